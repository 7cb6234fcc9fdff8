"""How the twin's ESO reads Key Vault: a small port, and adapters for what a test has at hand.

ESO's azurekv provider needs two calls: get one secret (latest or a version) with its tags and
attributes, and list the vault's secrets with their ``enabled`` flag and tags (``find``).
:class:`VaultReader` is that port. Adapters:

- :class:`SdkVault` wraps an ``azure.keyvault.secrets.SecretClient`` (the real SDK, e.g.
  ``KeyVaultTwin.secret_client()``), mapping a 404 to :class:`SecretNotFound` (ESO's
  ``NoSecretError``, "Secret does not exist") and every other SDK error to
  :class:`VaultReadError`;
- :class:`FunctionVault` wraps a callable ``(name, version) -> (value, tags)``; it cannot list.

:func:`as_reader` picks the adapter; :func:`normalise_vault_url` is the key a store's
``spec.provider.azurekv.vaultUrl`` is looked up by: scheme and host lower-cased, the port kept,
the path without its trailing ``/`` (reference section 4.4 row 9).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, TypeVar, runtime_checkable
from urllib.parse import urlsplit

_T = TypeVar("_T")


class SecretNotFound(Exception):
    """The vault has no such secret (or version): ESO's ``NoSecretError``."""

    def __init__(self) -> None:
        super().__init__("Secret does not exist")


class VaultReadError(Exception):
    """Any other failure reading the vault (auth, throttling, a disabled secret, no route)."""


@dataclass(frozen=True)
class VaultSecret:
    """One secret version as ESO reads it. ``value`` never appears in ``repr``."""

    name: str
    value: str = field(repr=False)
    tags: Mapping[str, str] = field(default_factory=dict)
    created: datetime | None = None
    updated: datetime | None = None
    expires: datetime | None = None
    not_before: datetime | None = None


@dataclass(frozen=True)
class VaultItem:
    """A listed secret: what ``find`` filters on."""

    name: str
    enabled: bool
    tags: Mapping[str, str] = field(default_factory=dict)


@runtime_checkable
class VaultReader(Protocol):
    """Read access to one vault."""

    def get(self, name: str, version: str) -> VaultSecret:
        """The secret's value and metadata (``version`` empty: the latest)."""
        ...

    def list(self) -> Iterable[VaultItem]:
        """Every secret in the vault (latest versions' attributes)."""
        ...


class SdkVault:
    """A :class:`VaultReader` over an ``azure.keyvault.secrets.SecretClient``."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def __repr__(self) -> str:
        return f"SdkVault(url={getattr(self._client, 'vault_url', '?')!r})"

    def get(self, name: str, version: str) -> VaultSecret:
        """``SecretClient.get_secret``; 404 is :class:`SecretNotFound`."""
        secret = self._call(lambda: self._client.get_secret(name, version or None))
        properties = secret.properties
        return VaultSecret(
            name=str(secret.name),
            value=str(secret.value or ""),
            tags=dict(properties.tags or {}),
            created=properties.created_on,
            updated=properties.updated_on,
            expires=properties.expires_on,
            not_before=properties.not_before,
        )

    def list(self) -> Iterable[VaultItem]:
        """``SecretClient.list_properties_of_secrets``."""

        def listed() -> list[VaultItem]:
            return [
                VaultItem(str(p.name), bool(p.enabled), dict(p.tags or {}))
                for p in self._client.list_properties_of_secrets()
            ]

        return self._call(listed)

    @staticmethod
    def _call(action: Callable[[], _T]) -> _T:
        from azure.core.exceptions import AzureError, HttpResponseError, ResourceNotFoundError

        try:
            return action()
        except ResourceNotFoundError as exc:
            raise SecretNotFound() from exc
        except HttpResponseError as exc:
            raise VaultReadError(f"{exc.status_code}: {exc.message}") from exc
        except AzureError as exc:
            raise VaultReadError(str(exc)) from exc


class FunctionVault:
    """A :class:`VaultReader` over ``read(name, version) -> (value, tags)``; no listing.

    ``read`` raises :class:`SecretNotFound` (or ``KeyError``) for a missing secret.
    """

    def __init__(self, read: Callable[[str, str], tuple[str, Mapping[str, str]]]) -> None:
        self._read = read

    def __repr__(self) -> str:
        return f"FunctionVault(read={self._read!r})"

    def get(self, name: str, version: str) -> VaultSecret:
        """``read(name, version)``."""
        try:
            value, tags = self._read(name, version)
        except KeyError as exc:
            raise SecretNotFound() from exc
        return VaultSecret(name, value, dict(tags))

    def list(self) -> Iterable[VaultItem]:
        """Not available: a function reads one secret at a time."""
        raise VaultReadError("this vault is read through a function that cannot list secrets (find)")


VaultSource = Any
"""A ``SecretClient``, a :class:`VaultReader`, a ``KeyVaultTwin``, or ``read(name, version)``."""


def as_reader(source: VaultSource) -> VaultReader:
    """The :class:`VaultReader` for ``source``."""
    if hasattr(source, "get_secret") and hasattr(source, "list_properties_of_secrets"):
        return SdkVault(source)
    if hasattr(source, "secret_client"):  # a KeyVaultTwin
        return SdkVault(source.secret_client())
    if isinstance(source, VaultReader):
        return source
    if callable(source):
        return FunctionVault(source)
    raise TypeError(f"cannot read a vault through {type(source).__name__}")


def normalise_vault_url(url: str) -> str:
    """``https://KV.vault.azure.net:443/`` → ``https://kv.vault.azure.net``."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    default_port = {"https": 443, "http": 80}.get(scheme)
    netloc = f"{host}:{parts.port}" if parts.port and parts.port != default_port else host
    return f"{scheme}://{netloc}{parts.path.rstrip('/')}"
