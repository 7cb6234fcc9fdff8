"""App settings, read once at the edge into a frozen value that reports every problem at once.

Nothing here runs at import time: the composition root calls :meth:`Settings.from_env` on the
first invocation, so a missing setting is a clear error then, never "0 functions loaded".
``local.settings.example.json`` documents every key.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from rotation.catalogue import TargetCatalogue
from rotation.errors import ConfigurationError
from rotation.ids import VaultName
from rotation.journal import identity_problems, table_identity_spec
from rotation.urls import UnsafeUrl, checked_https_url, is_loopback

VAULTS = "ROTATOR_VAULTS"
VALIDITY_DAYS = "ROTATOR_VALIDITY_DAYS"
KEYVAULT_AUTH = "ROTATOR_KEYVAULT_AUTH"
KEYVAULT_STATIC_TOKEN = "ROTATOR_KEYVAULT_STATIC_TOKEN"  # noqa: S105 - a setting's name
KEYVAULT_CA_BUNDLE = "ROTATOR_KEYVAULT_CA_BUNDLE"
RETRY_ATTEMPTS = "ROTATOR_RETRY_ATTEMPTS"
RETRY_INITIAL_SECONDS = "ROTATOR_RETRY_INITIAL_SECONDS"
RETRY_MAX_SECONDS = "ROTATOR_RETRY_MAX_SECONDS"
CONNECT_TIMEOUT_SECONDS = "ROTATOR_CONNECT_TIMEOUT_SECONDS"
KEYVAULT_TIMEOUT_SECONDS = "ROTATOR_KEYVAULT_TIMEOUT_SECONDS"
LOG_LEVEL = "ROTATOR_LOG_LEVEL"
JOURNAL = "ROTATOR_JOURNAL"
JOURNAL_TABLE = "ROTATOR_JOURNAL_TABLE"
STORAGE = "AzureWebJobsStorage"
# Azure Functions' identity-based form of AzureWebJobsStorage (Microsoft Learn: "Connecting to
# host storage with an identity", and the app settings reference); read case-insensitively.
STORAGE_TABLE_URI = "AzureWebJobsStorage__tableServiceUri"
STORAGE_ACCOUNT_NAME = "AzureWebJobsStorage__accountName"
STORAGE_CREDENTIAL = "AzureWebJobsStorage__credential"
STORAGE_CLIENT_ID = "AzureWebJobsStorage__clientId"
STORAGE_RESOURCE_ID = "AzureWebJobsStorage__managedIdentityResourceId"
STORAGE_CLIENT_SECRET = "AzureWebJobsStorage__clientSecret"  # noqa: S105 - a setting's name
STORAGE_QUEUE_URI = "AzureWebJobsStorage__queueServiceUri"
STORAGE_OTHER_URIS = ("AzureWebJobsStorage__blobServiceUri", STORAGE_QUEUE_URI)
QUEUE = "ROTATOR_QUEUE"
LEASE_SECONDS = "ROTATOR_LEASE_SECONDS"
MAX_ATTEMPTS = "ROTATOR_MAX_ATTEMPTS"
ATTEMPT_BACKOFF_SECONDS = "ROTATOR_ATTEMPT_BACKOFF_SECONDS"
GRACE_HOURS = "ROTATOR_GRACE_HOURS"
SWEEP_WINDOW_DAYS = "ROTATOR_SWEEP_WINDOW_DAYS"
APPINSIGHTS = "APPLICATIONINSIGHTS_CONNECTION_STRING"
TARGETS = "ROTATOR_TARGETS"
TARGETS_FILE = "ROTATOR_TARGETS_FILE"
TRUST_APP_SERVICE_AUTH = "ROTATOR_TRUST_APP_SERVICE_AUTH"
KUBECONFIG_SECRET = "ROTATOR_KUBECONFIG_SECRET"  # noqa: S105 - a setting's name
PROPAGATION_POLL_SECONDS = "ROTATOR_PROPAGATION_POLL_SECONDS"
PROPAGATION_WATCH_MINUTES = "ROTATOR_PROPAGATION_WATCH_MINUTES"
IN_CLUSTER = "in-cluster"
EVENTS_ENDPOINT = "ROTATOR_EVENTS_ENDPOINT"
EVENTS_TOPIC = "ROTATOR_EVENTS_TOPIC"
EVENTS_CA_BUNDLE = "ROTATOR_EVENTS_CA_BUNDLE"

#: Key Vault raises SecretNearExpiry this many days before a version expires (fixed).
NEAR_EXPIRY_LEAD_DAYS = 30.0
#: A new version must outlive the near-expiry lead and the sweep window by at least this,
#: or the rotation that wrote it would be due again at once.
VALIDITY_MARGIN_DAYS = 1.0
#: A step's calls, end to end, must fit this many times the longest client timeout into the
#: lease (a step makes up to three target connections, or a Key Vault call and two).
LEASE_PER_TIMEOUT = 3
_STORAGE_ACCOUNT = re.compile(r"[a-z0-9]{3,24}")
_VAULT_NAME = re.compile(r"^[0-9A-Za-z](?:[0-9A-Za-z]|-(?=[0-9A-Za-z])){2,23}$")
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
KeyVaultAuth = Literal["default", "static-token"]
N = TypeVar("N", int, float)


@dataclass(frozen=True, slots=True)
class VaultConfig:
    """A vault akv-rotator may act on: events from any other vault are refused."""

    name: VaultName
    url: str

    @property
    def is_loopback(self) -> bool:
        """Decided by the parser the SDK's HTTP stack uses (:mod:`rotation.urls`)."""
        return is_loopback(self.url)


@dataclass(frozen=True, slots=True)
class RetrySettings:
    """Bounded retries with exponential backoff and jitter, for transient errors only."""

    attempts: int = 4
    initial_seconds: float = 1.0
    max_seconds: float = 30.0


@dataclass(frozen=True, slots=True)
class ProtocolSettings:
    """How rotations are journaled, leased, re-attempted and finished."""

    journal: str = field(default="memory:", repr=False)  # may hold a storage key
    lease_seconds: float = 300.0
    max_attempts: int = 5
    attempt_backoff_seconds: float = 60.0
    grace_hours: float = 24.0
    sweep_window_days: float = 30.0


@dataclass(frozen=True, slots=True)
class ClusterSource:
    """Where the credentials of one cluster come from: a Key Vault secret holding a
    kubeconfig (``vault/secret``), or the pod's own service account (``in-cluster``)."""

    name: str
    vault: VaultName | None = None
    secret: str | None = None


@dataclass(frozen=True, slots=True)
class PropagationSettings:
    """Which clusters to propagate to, and how often to come back to confirm."""

    clusters: tuple[ClusterSource, ...] = ()
    poll_seconds: float = 60.0
    watch_minutes: float = 60.0


@dataclass(frozen=True, slots=True)
class EventSettings:
    """Where rotation events go: an Event Grid basic topic's endpoint, or a namespace's
    endpoint and ``topic``; None when events are off."""

    endpoint: str
    topic: str | None = None
    ca_bundle: str | None = None


@dataclass(frozen=True, slots=True)
class QueueSettings:
    """The Storage queue the sweeper fans its work out on (the account of AzureWebJobsStorage,
    as the Functions host's queue trigger reads it): a connection string, or a queue service
    endpoint reached with the app's identity."""

    name: str = "rotations"
    connection: str | None = field(default=None, repr=False)  # may hold an account key
    endpoint: str | None = None
    client_id: str | None = None
    resource_id: str | None = None

    @property
    def poison_name(self) -> str:
        """Where the Functions host moves a message after maxDequeueCount deliveries."""
        return f"{self.name}-poison"


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the core needs to know about its environment."""

    vaults: tuple[VaultConfig, ...]
    validity_days: int = 90
    keyvault_auth: KeyVaultAuth = "default"
    keyvault_static_token: str | None = field(default=None, repr=False)
    keyvault_ca_bundle: str | None = None
    retry: RetrySettings = RetrySettings()
    connect_timeout_seconds: float = 10.0
    keyvault_timeout_seconds: float = 20.0
    log_level: str = "INFO"
    appinsights_connection_string: str | None = field(default=None, repr=False)
    protocol: ProtocolSettings = ProtocolSettings()
    targets: TargetCatalogue = field(default_factory=lambda: TargetCatalogue({}))
    #: Take the caller's identity from App Service authentication's x-ms-client-principal-*
    #: headers. Only true where that authentication is on: it strips forged copies; without
    #: it anyone holding the function key could write any name into the audit trail.
    trust_app_service_auth: bool = False
    propagation: PropagationSettings = PropagationSettings()
    events: EventSettings | None = None
    #: The sweeper's work queue; None where no storage account is configured (a local run
    #: on SQLite), and then the sweeper does the work itself.
    queue: QueueSettings | None = None

    @property
    def call_timeout_seconds(self) -> float:
        """The longest any one client call may take (Key Vault, or a target connection)."""
        return max(self.keyvault_timeout_seconds, self.connect_timeout_seconds)

    @property
    def min_validity_days(self) -> float:
        """New versions must live longer than this, or they would be rotated again at once."""
        return max(NEAR_EXPIRY_LEAD_DAYS, self.protocol.sweep_window_days) + VALIDITY_MARGIN_DAYS

    def validity_problem(self, days: float, source: str) -> str | None:
        """Why a lifetime of ``days`` (from ``source``) cannot work, or None when it can."""
        if days >= self.min_validity_days:
            return None
        return (f"{source}={days:g} days is too short: a new version must live at least "
                f"{self.min_validity_days:g} days (Key Vault's {NEAR_EXPIRY_LEAD_DAYS:g}-day "
                f"near-expiry lead or {SWEEP_WINDOW_DAYS}={self.protocol.sweep_window_days:g}, "
                f"plus {VALIDITY_MARGIN_DAYS:g}), or every event and sweep would rotate it again")

    def vault(self, name: str) -> VaultConfig | None:
        """The configured vault of that name (Key Vault names are case-insensitive)."""
        for vault in self.vaults:
            if vault.name == name.lower():
                return vault
        return None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Read the ``ROTATOR_*`` app settings; raise one error naming every problem."""
        problems: list[str] = []
        vaults = _vaults(env.get(VAULTS, ""), problems)
        auth = env.get(KEYVAULT_AUTH, "default").strip() or "default"
        token = env.get(KEYVAULT_STATIC_TOKEN) or None
        if auth not in ("default", "static-token"):
            problems.append(f"{KEYVAULT_AUTH} must be 'default' or 'static-token', got {auth!r}")
        elif auth == "static-token":
            if not token:
                problems.append(f"{KEYVAULT_AUTH}=static-token needs {KEYVAULT_STATIC_TOKEN}")
            remote = [v.name for v in vaults if not v.is_loopback]
            if remote:
                problems.append(
                    f"{KEYVAULT_AUTH}=static-token is only for a local twin on loopback, "
                    f"but these vaults are remote: {', '.join(remote)}"
                )
        trust_auth = env.get(TRUST_APP_SERVICE_AUTH, "false").strip().lower() or "false"
        if trust_auth not in ("true", "false"):
            problems.append(f"{TRUST_APP_SERVICE_AUTH} must be true or false, got {trust_auth!r}")
        log_level = env.get(LOG_LEVEL, "INFO").strip().upper() or "INFO"
        if log_level not in _LOG_LEVELS:
            problems.append(f"{LOG_LEVEL} must be one of {', '.join(_LOG_LEVELS)}, got {log_level!r}")
        settings = cls(
            vaults=vaults,
            validity_days=_number(env, VALIDITY_DAYS, 90, int, 1, 3650, problems),
            keyvault_auth="static-token" if auth == "static-token" else "default",
            keyvault_static_token=token,
            keyvault_ca_bundle=env.get(KEYVAULT_CA_BUNDLE) or None,
            retry=RetrySettings(
                attempts=_number(env, RETRY_ATTEMPTS, 4, int, 1, 20, problems),
                initial_seconds=_number(env, RETRY_INITIAL_SECONDS, 1.0, float, 0.0, 60.0, problems),
                max_seconds=_number(env, RETRY_MAX_SECONDS, 30.0, float, 0.0, 300.0, problems),
            ),
            connect_timeout_seconds=_number(env, CONNECT_TIMEOUT_SECONDS, 10.0, float, 1.0, 120.0,
                                            problems),
            keyvault_timeout_seconds=_number(env, KEYVAULT_TIMEOUT_SECONDS, 20.0, float, 1.0,
                                             120.0, problems),
            log_level=log_level,
            appinsights_connection_string=env.get(APPINSIGHTS) or None,
            protocol=ProtocolSettings(
                journal=_journal(env, problems),
                lease_seconds=_number(env, LEASE_SECONDS, 300.0, float, 1.0, 3600.0, problems),
                max_attempts=_number(env, MAX_ATTEMPTS, 5, int, 1, 50, problems),
                attempt_backoff_seconds=_number(env, ATTEMPT_BACKOFF_SECONDS, 60.0, float, 0.0,
                                                86400.0, problems),
                grace_hours=_number(env, GRACE_HOURS, 24.0, float, 0.0, 720.0, problems),
                sweep_window_days=_number(env, SWEEP_WINDOW_DAYS, 30.0, float, 0.0, 365.0,
                                          problems),
            ),
            targets=_targets(env, tuple(v.name for v in vaults), problems),
            trust_app_service_auth=trust_auth == "true",
            events=_events(env, auth, problems),
            queue=_queue(env, problems),
            propagation=PropagationSettings(
                clusters=_clusters(env.get(KUBECONFIG_SECRET, ""), vaults, problems),
                poll_seconds=_number(env, PROPAGATION_POLL_SECONDS, 60.0, float, 1.0, 3600.0,
                                     problems),
                watch_minutes=_number(env, PROPAGATION_WATCH_MINUTES, 60.0, float, 0.0, 1440.0,
                                      problems),
            ),
        )
        problems.extend(_protocol_problems(settings))
        if problems:
            raise ConfigurationError(problems)
        return settings


def _protocol_problems(settings: Settings) -> list[str]:
    """Combinations the protocol cannot honour, with the numbers (docs/protocol.md)."""
    problems: list[str] = []
    validity = settings.validity_problem(settings.validity_days, VALIDITY_DAYS)
    if validity:
        problems.append(validity)
    needed = LEASE_PER_TIMEOUT * settings.call_timeout_seconds
    if settings.protocol.lease_seconds < needed:
        problems.append(
            f"{LEASE_SECONDS}={settings.protocol.lease_seconds:g} is too short: it must be at least "
            f"{LEASE_PER_TIMEOUT} x the longest client timeout ({KEYVAULT_TIMEOUT_SECONDS}="
            f"{settings.keyvault_timeout_seconds:g}, {CONNECT_TIMEOUT_SECONDS}="
            f"{settings.connect_timeout_seconds:g}) = {needed:g} seconds, so that no step can "
            "outlive the lease of the worker running it")
    return problems


def _journal(env: Mapping[str, str], problems: list[str]) -> str:
    """``table`` (Azure Table Storage in the ``AzureWebJobsStorage`` account) or ``sqlite:PATH``.

    The account is named the way Azure Functions names its own storage: a connection string in
    ``AzureWebJobsStorage`` (an exact setting wins over the prefixed ones, as in Functions), or
    else the identity-based ``AzureWebJobsStorage__*`` settings (:func:`_identity_journal`).
    """
    choice = env.get(JOURNAL, "table").strip() or "table"
    if choice == "table":
        table = env.get(JOURNAL_TABLE, "rotations").strip() or "rotations"
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9]{2,62}", table):
            problems.append(f"{JOURNAL_TABLE} must be 3-63 letters and digits, got {table!r}")
            table = "rotations"  # only to go on checking: the error is raised anyway
        storage = _storage_settings(env, problems)
        connection = storage.get(STORAGE.lower(), "").strip()
        if connection:
            return f"table:{table}:{connection}"
        return _identity_journal(table, storage, problems)
    if choice.startswith("sqlite:") and len(choice) > len("sqlite:"):
        return choice
    if choice == "memory:":
        return choice
    problems.append(f"{JOURNAL} must be 'table' or 'sqlite:/path/to/journal.db', got {choice!r}")
    return "memory:"


def _queue(env: Mapping[str, str], problems: list[str]) -> QueueSettings | None:
    """``ROTATOR_QUEUE`` (default ``rotations``) in the AzureWebJobsStorage account, named as
    the host names it: a connection string, ``__queueServiceUri`` or ``__accountName`` with the
    app's identity. No storage at all: None (the sweeper works inline)."""
    name = env.get(QUEUE, "rotations").strip() or "rotations"
    if not re.fullmatch(r"[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,55}", name):
        problems.append(f"{QUEUE} must be a queue name: 3-56 lower-case letters, digits and single "
                        f"hyphens (the host adds '-poison'), got {name!r}")
        return None
    storage = _storage_settings(env, [])  # the journal reports conflicting spellings

    def setting(key: str) -> str:
        return storage.get(key.lower(), "").strip()

    connection = setting(STORAGE)
    if connection:
        return QueueSettings(name, connection=connection) if _has_queue_service(connection) else None
    uri, account = setting(STORAGE_QUEUE_URI), setting(STORAGE_ACCOUNT_NAME)
    if not uri and not (account and _STORAGE_ACCOUNT.fullmatch(account)):
        return None
    endpoint = uri or f"https://{account}.queue.core.windows.net"
    client_id, resource_id = _storage_identity(setting, [])
    found = identity_problems(endpoint, client_id, resource_id, endpoint_name=STORAGE_QUEUE_URI,
                              client_id_name=STORAGE_CLIENT_ID, resource_id_name=STORAGE_RESOURCE_ID)
    if found:
        problems.extend(found)
        return None
    return QueueSettings(name, endpoint=endpoint, client_id=client_id, resource_id=resource_id)


def _has_queue_service(connection: str) -> bool:
    """Whether a storage connection string reaches a queue service: Azurite's shorthand and an
    account's string (its endpoints derived from the account) do; one that names only other
    services' endpoints (``TableEndpoint=...``) does not."""
    parts = {key.strip().lower(): value.strip() for key, _, value in
             (item.partition("=") for item in connection.split(";") if "=" in item)}
    if parts.get("usedevelopmentstorage", "").lower() == "true" or "queueendpoint" in parts:
        return True
    return not any(key.endswith("endpoint") for key in parts)


def _storage_settings(env: Mapping[str, str], problems: list[str]) -> dict[str, str]:
    """``AzureWebJobsStorage`` and its ``__`` settings by lower-cased name: Functions reads app
    settings case-insensitively (``AzureWebJobsStorage__accountname`` works for the host)."""
    found: dict[str, tuple[str, str]] = {}
    prefix = STORAGE.lower()
    for key, value in env.items():
        folded = key.lower()
        if folded != prefix and not folded.startswith(prefix + "__"):
            continue
        if folded in found and found[folded][1].strip() != value.strip():
            problems.append(f"{found[folded][0]} and {key} are both set, to different values; "
                            "app setting names are case-insensitive, so keep one")
        found[folded] = (key, value)
    return {folded: value for folded, (_key, value) in found.items()}


def _identity_journal(table: str, storage: Mapping[str, str], problems: list[str]) -> str:
    """The journal over Functions' identity-based storage connection, as Microsoft documents it.

    The table service is ``AzureWebJobsStorage__tableServiceUri`` (https; any cloud, custom DNS,
    or Azurite with OAuth) or else ``AzureWebJobsStorage__accountName`` (global Azure only:
    ``https://<name>.table.core.windows.net``). The identity is ``DefaultAzureCredential``:
    the system-assigned managed identity in Azure, the developer's sign-in locally; with
    ``AzureWebJobsStorage__credential=managedidentity``, ``__clientId`` (or
    ``__managedIdentityResourceId``) picks a user-assigned identity instead.
    """
    def setting(name: str) -> str:
        return storage.get(name.lower(), "").strip()

    uri, account = setting(STORAGE_TABLE_URI), setting(STORAGE_ACCOUNT_NAME)
    if uri:
        endpoint = uri
    elif account:
        if not _STORAGE_ACCOUNT.fullmatch(account):
            problems.append(f"{STORAGE_ACCOUNT_NAME} must be a storage account name (3-24 lower-case "
                            f"letters and digits), got {account!r}")
            return "memory:"
        endpoint = f"https://{account}.table.core.windows.net"
    else:
        others = [name for name in STORAGE_OTHER_URIS if setting(name)]
        problems.append(
            f"{JOURNAL}=table needs {STORAGE} (the storage account's connection string) or an "
            f"identity-based connection to it: {STORAGE_ACCOUNT_NAME} or {STORAGE_TABLE_URI}"
            + (f" ({', '.join(others)} alone is not enough: the journal is a table)" if others else ""))
        return "memory:"
    client_id, resource_id = _storage_identity(setting, problems)
    found = identity_problems(endpoint, client_id, resource_id, endpoint_name=STORAGE_TABLE_URI,
                              client_id_name=STORAGE_CLIENT_ID, resource_id_name=STORAGE_RESOURCE_ID)
    if found:
        problems.extend(found)
        return "memory:"
    return table_identity_spec(table, endpoint, client_id=client_id, resource_id=resource_id)


def _storage_identity(setting: Callable[[str], str],
                      problems: list[str]) -> tuple[str | None, str | None]:
    """The user-assigned identity (client ID, resource ID) the settings name, if any.

    Microsoft's rules: ``__credential`` is ``managedidentity`` in Azure and unset locally;
    ``__clientId``/``__managedIdentityResourceId`` name a user-assigned identity only with
    ``managedidentity`` (unset, a client ID belongs to a local service principal with
    ``__tenantId``/``__clientSecret``, which the journal does not take: locally it signs in as
    the developer). Values are not echoed.
    """
    credential = setting(STORAGE_CREDENTIAL).lower()
    client_id = setting(STORAGE_CLIENT_ID) or None
    resource_id = setting(STORAGE_RESOURCE_ID) or None
    if credential == "managedidentity":
        return client_id, resource_id
    if credential == "managedidentityasfederatedidentity":
        problems.append(f"{STORAGE_CREDENTIAL}=managedidentityasfederatedidentity (a storage account "
                        "in another tenant) is not supported by the journal")
    elif credential:
        problems.append(f"{STORAGE_CREDENTIAL} must be 'managedidentity' (in Azure) or unset "
                        "(locally, where the developer's sign-in is used)")
    elif setting(STORAGE_CLIENT_SECRET):
        problems.append(f"{STORAGE_CLIENT_SECRET} (a service principal, which Functions takes only in "
                        "local development) is not supported by the journal: unset it and sign "
                        "in (az login); DefaultAzureCredential uses that")
    elif client_id or resource_id:
        named = STORAGE_CLIENT_ID if client_id else STORAGE_RESOURCE_ID
        problems.append(f"{named} names a user-assigned identity only with {STORAGE_CREDENTIAL}="
                        f"managedidentity: set that too, or unset {named} to use the "
                        "system-assigned identity")
    return None, None


def _vaults(raw: str, problems: list[str]) -> tuple[VaultConfig, ...]:
    """Parse ``name`` or ``name=https://url`` entries, comma-separated."""
    entries = [entry.strip() for entry in raw.split(",") if entry.strip()]
    if not entries:
        problems.append(
            f"{VAULTS} is required: comma-separated vault names, or name=https://url pairs"
        )
        return ()
    vaults: list[VaultConfig] = []
    for entry in entries:
        name, _, url = (part.strip() for part in entry.partition("="))
        if not _VAULT_NAME.match(name):
            problems.append(f"{VAULTS}: {name!r} is not a Key Vault name (3-24 letters, digits, -)")
            continue
        name = name.lower()
        try:
            url = checked_https_url(url or f"https://{name}.vault.azure.net",
                                    what=f"{VAULTS}: the URL of {name}")
        except UnsafeUrl as exc:
            problems.append(str(exc))
            continue
        vaults.append(VaultConfig(VaultName(name), url))
    return tuple(vaults)


def _events(env: Mapping[str, str], auth: str, problems: list[str]) -> EventSettings | None:
    """``ROTATOR_EVENTS_ENDPOINT`` (https) and, for a namespace, ``ROTATOR_EVENTS_TOPIC``."""
    raw = env.get(EVENTS_ENDPOINT, "").strip()
    topic = env.get(EVENTS_TOPIC, "").strip() or None
    if not raw:
        if topic:
            problems.append(f"{EVENTS_TOPIC} needs {EVENTS_ENDPOINT} (the namespace's endpoint)")
        return None
    try:
        endpoint = checked_https_url(raw, what=EVENTS_ENDPOINT)
    except UnsafeUrl as exc:
        problems.append(str(exc))
        return None
    if topic is not None and not re.fullmatch(r"[A-Za-z0-9-]{3,50}", topic):
        problems.append(f"{EVENTS_TOPIC} must be 3-50 letters, digits and '-', got {topic!r}")
    if auth == "static-token" and not is_loopback(endpoint):
        problems.append(f"{KEYVAULT_AUTH}=static-token is only for local twins on loopback, but "
                        f"{EVENTS_ENDPOINT} is remote")
    return EventSettings(endpoint, topic, env.get(EVENTS_CA_BUNDLE, "").strip() or None)


def _clusters(raw: str, vaults: tuple[VaultConfig, ...],
              problems: list[str]) -> tuple[ClusterSource, ...]:
    """``in-cluster`` and ``vault/secret`` entries, comma-separated; a vault must be one of
    ``ROTATOR_VAULTS`` (the rotator reads the kubeconfig with its own identity)."""
    found: list[ClusterSource] = []
    for entry in (part.strip() for part in raw.split(",")):
        if not entry:
            continue
        if entry == IN_CLUSTER:
            source = ClusterSource(IN_CLUSTER)
        else:
            vault, _, secret = entry.partition("/")
            known = {v.name for v in vaults}
            if not secret or not re.fullmatch(r"[0-9A-Za-z-]{1,127}", secret):
                problems.append(f"{KUBECONFIG_SECRET}: {entry!r} is neither {IN_CLUSTER} nor "
                                "vault/secret-name")
                continue
            if vault.lower() not in known:
                problems.append(f"{KUBECONFIG_SECRET}: vault {vault!r} of {entry!r} is not in "
                                f"{VAULTS}")
                continue
            source = ClusterSource(secret.lower(), VaultName(vault.lower()), secret)
        if source.name in {c.name for c in found}:
            problems.append(f"{KUBECONFIG_SECRET}: cluster {source.name!r} is listed twice")
            continue
        found.append(source)
    return tuple(found)


def _targets(env: Mapping[str, str], vaults: tuple[VaultName, ...],
             problems: list[str]) -> TargetCatalogue:
    """The operator's targets, inline JSON or a file shipped with the app (README: Targets)."""
    inline = env.get(TARGETS, "").strip()
    path = env.get(TARGETS_FILE, "").strip()
    document: Any = None
    base_dir = Path.cwd()
    source = TARGETS_FILE if path else TARGETS
    if inline and path:
        problems.append(f"set {TARGETS} or {TARGETS_FILE}, not both")
        return TargetCatalogue({})
    if not inline and not path:
        problems.append(f"{TARGETS} (or {TARGETS_FILE}) is required: the targets secrets may "
                        "bind to, declared by the operator")
        return TargetCatalogue({})
    text = inline
    if path:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(f"{TARGETS_FILE}={path!r} cannot be read: {type(exc).__name__}")
            return TargetCatalogue({})
        base_dir = Path(path).resolve().parent
    try:
        document = json.loads(text)
    except (ValueError, RecursionError) as exc:
        problems.append(f"{source} is not valid JSON: {exc}")
        return TargetCatalogue({})
    return TargetCatalogue.parse(document, vaults=vaults, base_dir=base_dir, source=source,
                                 problems=problems)


def _number(  # noqa: PLR0917 - one call per setting reads best positionally
    env: Mapping[str, str], key: str, default: N, kind: type[N], low: N, high: N, problems: list[str]
) -> N:
    raw = env.get(key, "").strip()
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        noun = "whole number" if kind is int else "number"
        problems.append(f"{key} must be a {noun}, got {raw!r}")
        return default
    if not low <= value <= high:
        problems.append(f"{key} must be between {low} and {high}, got {raw}")
        return default
    return value
