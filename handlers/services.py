"""The composition root: builds settings and SDK clients on first use, then reuses them.

Nothing here runs at import time. The first invocation reads the app settings; a missing or
malformed one raises :class:`~rotation.errors.ConfigurationError` naming every problem, and
the next invocation tries again (so fixing the setting needs no restart). Key Vault clients
are built per vault on first use and kept for the life of the worker. Tests call
:func:`reset_services`, and may pass a step observer to :func:`build_services`.
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from handlers.observability import configure_logging, configure_tracing
from rotation.attempt import StepObserver
from rotation.catalogue import build_target
from rotation.engine import RotationEngine, TargetFactory
from rotation.errors import ConfigurationError
from rotation.health import CredentialHealth
from rotation.ids import VaultName
from rotation.journal import Journal, open_journal
from rotation.keyvault import KeyVaultSecrets, build_secret_client, credential_for
from rotation.propagation.access import ClusterDirectory
from rotation.propagation.propagator import Propagator
from rotation.service import RotationService
from rotation.settings import Settings
from rotation.sweeper import Sweeper


@dataclass(frozen=True)
class Services:
    """What handlers are given: settings, the journal, and the services built on them."""

    settings: Settings
    journal: Journal
    rotation: RotationService
    sweeper: Sweeper
    health: CredentialHealth


ServicesProvider = Callable[[], Services]

_lock = threading.Lock()
_services: Services | None = None
_observer: StepObserver | None = None


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
                _services = build_services(settings, observer=_observer)
    return _services


def worker_id() -> str:
    """Who holds a lease: the instance (in Azure), the host, the process, and a nonce."""
    instance = os.environ.get("WEBSITE_INSTANCE_ID", "")[:12] or socket.gethostname()
    return f"{instance}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def build_services(settings: Settings, *, observer: StepObserver | None = None,
                   clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                   targets: TargetFactory = build_target) -> Services:
    """Wire the core together for ``settings``; Key Vault clients are made on first use.

    ``targets`` builds a target for a rotation (the catalogue's kinds; tests may wrap it).
    """
    clients: dict[VaultName, KeyVaultSecrets] = {}
    clients_lock = threading.Lock()

    def vault_secrets(name: str) -> KeyVaultSecrets:
        with clients_lock:
            vault = settings.vault(name)
            if vault is None:
                raise ConfigurationError([f"vault {name!r} is not configured"])
            if vault.name not in clients:
                clients[vault.name] = KeyVaultSecrets(
                    vault.name, build_secret_client(vault, settings), settings)
            return clients[vault.name]

    journal = open_journal(settings.protocol.journal)
    propagator = None
    if settings.propagation.clusters:
        directory = ClusterDirectory(
            settings.propagation.clusters,
            lambda vault, name: vault_secrets(vault).latest(name).value.reveal(),
            timeout_seconds=settings.connect_timeout_seconds)
        propagator = Propagator(directory, clock)
    publisher = None
    if settings.events is not None:
        from rotation.publishing import build_publisher

        publisher = build_publisher(
            settings.events.endpoint, credential_for(settings), namespace_topic=settings.events.topic,
            ca_bundle=settings.events.ca_bundle, timeout_seconds=settings.keyvault_timeout_seconds,
            retry=settings.retry, clock=clock)
    engine = RotationEngine(settings=settings, journal=journal, vaults=vault_secrets,
                            targets=targets, clock=clock, observer=observer,
                            propagator=propagator, publisher=publisher)
    rotation = RotationService(settings=settings, vaults=vault_secrets, journal=journal,
                               engine=engine, clock=clock, worker_id=worker_id())
    sweeper = Sweeper(settings=settings, service=rotation, clock=clock)
    health = CredentialHealth(settings=settings, vaults=vault_secrets, journal=journal,
                              targets=targets)
    return Services(settings=settings, journal=journal, rotation=rotation, sweeper=sweeper,
                    health=health)


def set_step_observer(observer: StepObserver | None) -> None:
    """Install an observer on the next services built (the fault-injection tests' seam)."""
    global _observer
    _observer = observer


def reset_services() -> None:
    """Drop the built services so the next call re-reads the environment (tests)."""
    global _services
    with _lock:
        _services = None
