"""Key Vault twin: an HTTPS server speaking the Key Vault secrets API to the real Azure SDK.

Usage::

    from twins.keyvault import KeyVaultTwin

    with KeyVaultTwin() as twin:
        client = twin.secret_client()
        client.set_secret("db-password", "s3cr3t")
        assert twin.events[-1]["eventType"] == "Microsoft.KeyVault.SecretNewVersionCreated"

Modules: ``store`` (vault state and rules), ``wire`` (JSON shapes), ``errors`` (Key Vault
error bodies), ``parsing`` (request bodies and headers), ``routes`` (auth challenge, faults,
routing, admin API), ``server`` (HTTPS), ``events`` (Event Grid events and delivery),
``faults`` (fault injection, request log), ``limits`` (service limits: 429 beyond a quota,
off by default), ``tls`` (certificates), ``credential`` (SDK credential), ``twin`` (the
facade), ``__main__`` (standalone CLI). What the Jenkins twin also needs (the threaded TLS
server, fault arming and timing, the request log, start/stop, the CLI's serve loop) is in
:mod:`twins.http`; these modules hold what is Key Vault's.
"""

from twins.keyvault.credential import TwinCredential
from twins.keyvault.errors import VaultError
from twins.keyvault.events import EXPIRED, NEAR_EXPIRY, NEW_VERSION_CREATED, SECRET_EVENT_TYPES
from twins.keyvault.faults import Fault, RecordedRequest
from twins.keyvault.limits import ServiceLimits, ThrottleCounts
from twins.keyvault.twin import KeyVaultTwin

__all__ = [
    "EXPIRED",
    "NEAR_EXPIRY",
    "NEW_VERSION_CREATED",
    "SECRET_EVENT_TYPES",
    "Fault",
    "KeyVaultTwin",
    "RecordedRequest",
    "ServiceLimits",
    "ThrottleCounts",
    "TwinCredential",
    "VaultError",
]
