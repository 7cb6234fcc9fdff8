"""The composition root of the core: settings in, the services built on them out.

The Functions app (:mod:`handlers.services`) and the operator's CLI (:mod:`rotation.cli`)
build the same services here, so a plan, a status or a rotation started from a laptop runs
exactly the code a deployed worker runs. Key Vault clients are made per vault on first use.
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from rotation.attempt import StepObserver
from rotation.catalogue import build_target
from rotation.engine import RotationEngine, TargetFactory
from rotation.errors import ConfigurationError
from rotation.health import CredentialHealth
from rotation.ids import VaultName
from rotation.journal import Journal, open_journal
from rotation.keyvault import KeyVaultSecrets, build_secret_client, credential_for
from rotation.preflight import Preflight
from rotation.propagation.access import ClusterDirectory
from rotation.propagation.propagator import Propagator
from rotation.queue import WorkQueue
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
    preflight: Preflight
    vaults: Callable[[str], KeyVaultSecrets]



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
    directory = None
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
    queue = None
    if settings.queue is not None:
        queue = WorkQueue(settings.queue, timeout_seconds=settings.keyvault_timeout_seconds)
    sweeper = Sweeper(settings=settings, service=rotation, clock=clock, queue=queue)
    health = CredentialHealth(settings=settings, vaults=vault_secrets, journal=journal,
                              targets=targets)
    preflight = Preflight(settings=settings, vaults=vault_secrets, journal=journal,
                          targets=targets, clusters=directory, clock=clock)
    return Services(settings=settings, journal=journal, rotation=rotation, sweeper=sweeper,
                    health=health, preflight=preflight, vaults=vault_secrets)
