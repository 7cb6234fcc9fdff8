"""The composition root: builds settings and SDK clients on first use, then reuses them.

Nothing here runs at import time. The first invocation reads the app settings; a missing or
malformed one raises :class:`~rotation.errors.ConfigurationError` naming every problem, and
the next invocation tries again (so fixing the setting needs no restart). Key Vault clients
are built per vault on first use and kept for the life of the worker. Tests call
:func:`reset_services`.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from handlers.observability import configure_logging, configure_tracing
from rotation.errors import ConfigurationError
from rotation.ids import VaultName
from rotation.keyvault import KeyVaultSecrets, build_secret_client
from rotation.service import RotationService
from rotation.settings import Settings


@dataclass(frozen=True)
class Services:
    """What handlers are given: the settings and the rotation service built from them."""

    settings: Settings
    rotation: RotationService


ServicesProvider = Callable[[], Services]

_lock = threading.Lock()
_services: Services | None = None


def get_services() -> Services:
    """The process-wide services, built from ``os.environ`` on first use."""
    global _services
    if _services is None:
        with _lock:
            if _services is None:
                configure_logging()
                settings = Settings.from_env(os.environ)
                configure_logging(settings.log_level)
                configure_tracing(settings.appinsights_connection_string)
                _services = build_services(settings)
    return _services


def build_services(settings: Settings) -> Services:
    """Wire the core together for ``settings``; Key Vault clients are made on first use."""
    clients: dict[VaultName, KeyVaultSecrets] = {}
    clients_lock = threading.Lock()

    def vault_secrets(name: VaultName) -> KeyVaultSecrets:
        with clients_lock:
            if name not in clients:
                vault = settings.vault(name)
                if vault is None:
                    raise ConfigurationError([f"vault {name!r} is not configured"])
                clients[name] = KeyVaultSecrets(vault.name, build_secret_client(vault, settings),
                                                settings)
            return clients[name]

    rotation = RotationService(
        settings=settings, vaults=vault_secrets, clock=lambda: datetime.now(UTC)
    )
    return Services(settings=settings, rotation=rotation)


def reset_services() -> None:
    """Drop the built services so the next call re-reads the environment (tests)."""
    global _services
    with _lock:
        _services = None
