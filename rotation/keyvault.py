"""The Key Vault adapter: reads and writes secret versions through azure-keyvault-secrets.

Models are converted at this boundary into :class:`SecretVersion`, whose value is a
:class:`~rotation.secret_value.SecretValue`, and azure-core's exceptions are translated into
the project's tree in :func:`_translate`, the one place that knows them. Every call is
retried on transient errors by :func:`rotation.retry.call_with_retry`; the SDK's own retry
policy is off (``retry_total=0``) so there is exactly one retry layer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from azure.core.credentials import AccessToken, TokenCredential
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.keyvault.secrets import KeyVaultSecret, SecretClient

from rotation.errors import (
    AccessDenied,
    InvalidRequest,
    PermanentError,
    RotatorError,
    SecretNotFound,
    SecretNotRotatable,
    Throttled,
    TransientError,
)
from rotation.ids import SecretName, VaultName, VersionId
from rotation.retry import call_with_retry
from rotation.secret_value import SecretValue
from rotation.settings import Settings, VaultConfig

T = TypeVar("T")
_TRANSIENT_STATUS = {408, 429}


@dataclass(frozen=True, slots=True)
class SecretVersion:
    """One version of a secret as read from Key Vault; ``repr`` shows ids, never the value."""

    vault: VaultName
    name: SecretName
    version: VersionId
    value: SecretValue = field(repr=False)
    content_type: str | None
    tags: Mapping[str, str]
    enabled: bool
    expires_on: datetime | None
    not_before: datetime | None
    created_on: datetime | None


@dataclass(frozen=True, slots=True)
class SecretSummary:
    """A secret as listed: its latest version's properties, never its value."""

    name: SecretName
    tags: Mapping[str, str]
    enabled: bool
    expires_on: datetime | None
    content_type: str | None
    created_on: datetime | None = None  # when the latest version was written (tag edits aside)
    updated_on: datetime | None = None  # when the latest version last changed (written, or edited)


@dataclass(frozen=True, slots=True)
class VersionSummary:
    """One version of a secret as listed: its properties, never its value."""

    version: VersionId
    tags: Mapping[str, str]
    enabled: bool
    created_on: datetime | None


_EPOCH = datetime.min.replace(tzinfo=UTC)


def _created(item: Any) -> datetime:
    """Sort key: a version's creation time (unknown ones first)."""
    return getattr(item, "created_on", None) or _EPOCH


class KeyVaultSecrets:
    """One vault's secrets, with retries and error translation built in."""

    def __init__(self, vault: VaultName, client: SecretClient, settings: Settings) -> None:
        self.vault = vault
        self._client = client
        self._retry = settings.retry

    def latest(self, name: str) -> SecretVersion:
        """The secret's current (most recently created) version."""
        secret = self._call(lambda: self._client.get_secret(name), f"reading secret {name!r}")
        return self._convert(secret)

    def version(self, name: str, version: str) -> SecretVersion:
        """A specific version of the secret."""
        secret = self._call(
            lambda: self._client.get_secret(name, version), f"reading version {version} of {name!r}"
        )
        return self._convert(secret)

    def set_version(
        self,
        name: str,
        value: SecretValue,
        *,
        content_type: str | None,
        tags: Mapping[str, str],
        expires_on: datetime,
        marker: str | None = None,
    ) -> SecretVersion:
        """Create a new version carrying exactly these tags, content type and expiry.

        ``marker`` names a tag whose value in ``tags`` identifies this write (a rotation id).
        A failed try may still have been applied (the response was lost), so every retry
        first looks for an enabled version carrying that tag value and adopts it, rather than
        writing a second version.
        """
        tries = 0

        def write() -> KeyVaultSecret:
            nonlocal tries
            tries += 1
            if tries > 1 and marker is not None:
                earlier = self._find_tagged(name, marker, tags[marker])
                if earlier is not None:
                    return earlier
            return self._client.set_secret(
                name, value.reveal(), content_type=content_type, tags=dict(tags),
                expires_on=expires_on, enabled=True,
            )

        secret = self._call(write, f"writing a new version of {name!r}")
        return self._convert(secret, value=value)

    def versions(self, name: str) -> list[VersionSummary]:
        """Every version of ``name`` as listed (properties only, never values), oldest first."""

        def collect() -> list[VersionSummary]:
            listed = [VersionSummary(version=VersionId((props.version or "").lower()),
                                     tags=dict(props.tags or {}), enabled=bool(props.enabled),
                                     created_on=props.created_on)
                      for props in self._client.list_properties_of_secret_versions(name)]
            return sorted(listed, key=_created)

        return self._call(collect, f"listing the versions of {name!r}")

    def _find_tagged(self, name: str, tag: str, value: str) -> KeyVaultSecret | None:
        """The newest enabled version of ``name`` tagged ``tag=value``, if any (one try)."""
        matching = [props for props in self._client.list_properties_of_secret_versions(name)
                    if props.enabled and (props.tags or {}).get(tag) == value]
        if not matching:
            return None
        newest = max(matching, key=_created)
        return self._client.get_secret(name, newest.version)

    def disable_version(self, name: str, version: str) -> None:
        """Disable one version: Key Vault then refuses to hand out its value (403)."""
        self._call(
            lambda: self._client.update_secret_properties(name, version, enabled=False),
            f"disabling version {version} of {name!r}",
        )

    def list_secrets(self, seen: Callable[[int], None] | None = None) -> list[SecretSummary]:
        """Every secret's latest properties (names, tags, expiry), without values.

        ``seen`` is told how many have been listed so far, page by page (a progress bar)."""

        def collect() -> list[SecretSummary]:
            found = []
            for item in self._client.list_properties_of_secrets():
                found.append(self._summary(item))
                if seen is not None:
                    seen(len(found))
            return found

        return self._call(collect, "listing secrets")

    @staticmethod
    def _summary(item: Any) -> SecretSummary:
        return SecretSummary(name=SecretName(item.name or ""), tags=dict(item.tags or {}),
                             enabled=bool(item.enabled), expires_on=item.expires_on,
                             content_type=item.content_type, created_on=item.created_on,
                             updated_on=item.updated_on)

    def _call(self, action: Callable[[], T], what: str) -> T:
        def attempt() -> T:
            try:
                return action()
            except (HttpResponseError, ServiceRequestError, ServiceResponseError,
                    ClientAuthenticationError) as exc:
                raise _translate(exc, what, self.vault) from exc

        return call_with_retry(attempt, policy=self._retry, what=what)

    def _convert(self, secret: KeyVaultSecret, value: SecretValue | None = None) -> SecretVersion:
        props = secret.properties
        return SecretVersion(
            vault=self.vault,
            name=SecretName(props.name or secret.name or ""),
            version=VersionId((props.version or "").lower()),
            value=value if value is not None else SecretValue(secret.value or ""),
            content_type=props.content_type,
            tags=dict(props.tags or {}),
            enabled=bool(props.enabled),
            expires_on=props.expires_on,
            not_before=props.not_before,
            created_on=props.created_on,
        )


def _translate(exc: Exception, what: str, vault: str) -> RotatorError:
    """azure-core's errors onto our tree; Key Vault's messages never carry secret values."""
    if isinstance(exc, (ServiceRequestError, ServiceResponseError)):
        return TransientError(f"Key Vault {vault} unreachable when {what}: {type(exc).__name__}")
    if isinstance(exc, ResourceNotFoundError):
        return SecretNotFound(f"{what}: not found in vault {vault}")
    if isinstance(exc, ClientAuthenticationError) and not isinstance(exc, HttpResponseError):
        return AccessDenied(f"no token for Key Vault {vault} when {what}: {exc.message}")
    status = getattr(exc, "status_code", None) or 0
    code, inner = _error_codes(exc)
    detail = f"{what}: Key Vault {vault} answered {status} {code or ''}".rstrip()
    if status == 429:
        return Throttled(detail, retry_after=_retry_after(exc))
    if status in _TRANSIENT_STATUS or status >= 500:
        return TransientError(detail, retry_after=_retry_after(exc))
    if status == 403 and inner == "SecretDisabled":
        return SecretNotRotatable(f"{what}: the version is disabled")
    if status in (401, 403):
        return AccessDenied(f"{detail}: check the identity's secret permissions")
    if status == 409:
        return SecretNotRotatable(f"{detail} ({inner or 'conflict'})")
    if status == 400:
        return InvalidRequest(f"{detail}: {getattr(exc, 'message', '')}".rstrip(": "))
    return PermanentError(detail)


def _error_codes(exc: Exception) -> tuple[str | None, str | None]:
    error = getattr(exc, "error", None)
    code = getattr(error, "code", None)
    inner = getattr(getattr(error, "innererror", None), "get", lambda _k: None)("code")
    if inner is None:
        inner_obj = getattr(error, "inner_error", None)
        inner = getattr(inner_obj, "code", None)
    return code, inner


def _retry_after(exc: Exception) -> float | None:
    response = getattr(exc, "response", None)
    headers: Mapping[str, Any] = getattr(response, "headers", None) or {}
    for header, scale in (("retry-after-ms", 0.001), ("x-ms-retry-after-ms", 0.001),
                          ("Retry-After", 1.0)):
        raw = headers.get(header)
        if raw is None:
            continue
        try:
            return float(raw) * scale
        except ValueError:
            continue
    return None


class StaticTokenCredential:
    """A fixed bearer token, for the local Key Vault twin only (settings refuse remote vaults)."""

    def __init__(self, token: str) -> None:
        self._token = token

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        import time

        return AccessToken(self._token, int(time.time()) + 3600)


def credential_for(settings: Settings) -> TokenCredential:
    """The app's identity: DefaultAzureCredential in Azure (the managed identity), a static
    token for local twins (settings refuse it for anything but loopback)."""
    if settings.keyvault_auth == "static-token" and settings.keyvault_static_token:
        return StaticTokenCredential(settings.keyvault_static_token)
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential()


def build_secret_client(vault: VaultConfig, settings: Settings) -> SecretClient:
    """A SecretClient for one vault; DefaultAzureCredential in Azure, a static token locally."""
    credential = credential_for(settings)
    # Every call is bounded well below the rotation lease (settings check the ratio): azure-
    # core's default read timeout (300 s) equals the default lease, so a slow answer could
    # otherwise outlive the worker's claim on the rotation.
    options: dict[str, Any] = {"retry_total": 0,
                               "connection_timeout": settings.keyvault_timeout_seconds,
                               "read_timeout": settings.keyvault_timeout_seconds}
    if settings.keyvault_ca_bundle:
        options["connection_verify"] = settings.keyvault_ca_bundle
    return SecretClient(
        vault.url,
        credential,
        verify_challenge_resource=not vault.is_loopback,
        **options,
    )
