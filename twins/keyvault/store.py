"""The twin's vault: secrets, versions, soft delete, and Key Vault's rules about them.

No HTTP here. The server turns requests into calls on :class:`VaultStore` and renders what it
returns (or the :class:`~twins.keyvault.errors.VaultError` it raises), so every rule is stated
once and can be read without the transport around it.

Rules reproduced (protocols.md section 2 unless noted):

- a set creates a version from the request alone: tags, content type and attributes are per
  version, and a set without tags yields a version without tags;
- names are case-insensitive; ids keep the case the secret was first created with;
- "latest" is the most recently created version, even when it is disabled (then a read is 403);
- expired and not-yet-valid versions stay readable;
- the versions listing is ordered by version id, not by creation time, as the service does
  (azure-sdk-for-js recording ``can retrieve all versions of a secret by page``);
- delete is soft and takes ``delete_delay`` seconds, during which the name is neither active
  nor visible as deleted (the SDK's poller relies on that 404 window);
- a soft-deleted name cannot be reused until it is recovered or purged; deleted secrets are
  purged automatically at their scheduled purge date (90 days, ``recoverableDays``).

All state sits behind one lock; snapshots handed out are immutable.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Generic, TypeVar

from twins.keyvault import errors
from twins.keyvault.errors import VaultError

NAME_PATTERN = re.compile(r"^[0-9a-zA-Z-]{1,127}$")
MAX_VALUE_BYTES = 25 * 1024
MAX_TAGS = 15
MAX_TAG_LENGTH = 256
MAX_CONTENT_TYPE_LENGTH = 255
RECOVERABLE_DAYS = 90
RECOVERY_LEVEL = "Recoverable+Purgeable"
_DAY = 24 * 60 * 60

_T = TypeVar("_T")


@dataclass(frozen=True)
class SecretVersion:
    """One version of a secret, as stored. ``value`` never appears in ``repr``."""

    name: str
    version: str
    value: str = field(repr=False)
    content_type: str | None
    tags: Mapping[str, str] | None
    enabled: bool
    nbf: int | None
    exp: int | None
    created: int
    updated: int


@dataclass(frozen=True)
class DeletedSecret:
    """A soft-deleted secret: its latest version plus the deletion dates (Unix seconds)."""

    latest: SecretVersion
    deleted_date: int
    scheduled_purge_date: int


@dataclass
class _Record:
    """A secret's versions in creation order, and its deletion state when deleted."""

    name: str
    versions: list[SecretVersion]
    deleted_date: int = 0
    scheduled_purge_date: int = 0
    delete_done_at: float = 0.0

    @property
    def latest(self) -> SecretVersion:
        return self.versions[-1]


@dataclass(frozen=True)
class Page(Generic[_T]):
    """One page of a listing and the marker of the first item of the next page, if any."""

    items: list[_T]
    next_marker: str | None


def validate_name(name: str) -> None:
    """Raise 400 ``BadParameter`` unless ``name`` is a legal Key Vault object name."""
    if not NAME_PATTERN.fullmatch(name):
        raise errors.invalid_name(name)


def _validate_properties(tags: Mapping[str, str] | None, content_type: str | None) -> None:
    if tags is not None:
        too_long = any(len(k) > MAX_TAG_LENGTH or len(v) > MAX_TAG_LENGTH for k, v in tags.items())
        if len(tags) > MAX_TAGS or too_long:
            raise errors.property_invalid()
    if content_type is not None and len(content_type) > MAX_CONTENT_TYPE_LENGTH:
        raise errors.property_invalid()


def _paginate(keyed: Iterable[tuple[str, _T]], marker: str | None, limit: int) -> Page[_T]:
    """Cut a sorted ``(key, item)`` sequence into a page starting at ``marker``.

    A key marker (not an offset) keeps paging stable while secrets are added or deleted
    between pages, as the service's ``NextMarker`` does.
    """
    remaining = [(key, item) for key, item in keyed if marker is None or key >= marker]
    page = remaining[:limit]
    next_marker = remaining[limit][0] if len(remaining) > limit else None
    return Page([item for _, item in page], next_marker)


class VaultStore:
    """In-memory secrets of one vault, safe to share between request threads."""

    def __init__(self, delete_delay: float = 0.0, clock: Callable[[], float] = time.time) -> None:
        self._delete_delay = delete_delay
        self._clock = clock
        self._lock = threading.RLock()
        self._active: dict[str, _Record] = {}
        self._deleted: dict[str, _Record] = {}

    # -- active secrets ---------------------------------------------------------------

    def set_secret(
        self,
        name: str,
        value: str,
        *,
        content_type: str | None = None,
        tags: Mapping[str, str] | None = None,
        enabled: bool | None = None,
        nbf: int | None = None,
        exp: int | None = None,
    ) -> SecretVersion:
        """Create a new version from exactly these properties (nothing inherited)."""
        validate_name(name)
        if len(value.encode("utf-8")) > MAX_VALUE_BYTES:
            raise errors.secret_too_large(MAX_VALUE_BYTES)
        _validate_properties(tags, content_type)
        with self._lock:
            now = self._now()
            key = name.lower()
            deleted = self._deleted.get(key)
            if deleted is not None:
                if self._is_being_deleted(deleted, now):
                    raise errors.being_deleted_on_create(name)
                raise errors.deleted_but_recoverable(name)
            record = self._active.get(key)
            stamp = int(now)
            version = SecretVersion(
                name=record.name if record else name,
                version=uuid.uuid4().hex,
                value=value,
                content_type=content_type,
                tags=dict(tags) if tags is not None else None,
                enabled=True if enabled is None else enabled,
                nbf=nbf,
                exp=exp,
                created=stamp,
                updated=stamp,
            )
            if record is None:
                self._active[key] = _Record(name=name, versions=[version])
            else:
                record.versions.append(version)
            return version

    def get_secret(self, name: str, version: str | None = None) -> SecretVersion:
        """Return a readable version: 404 if absent, 403 ``SecretDisabled`` if disabled."""
        found = self.find_version(name, version)
        if not found.enabled:
            raise errors.secret_disabled()
        return found

    def find_version(self, name: str, version: str | None = None) -> SecretVersion:
        """Return a version whatever its ``enabled`` flag (for PATCH and for events)."""
        validate_name(name)
        with self._lock:
            self._now()
            record = self._active.get(name.lower())
            if record is None:
                raise errors.secret_not_found(name, version)
            if not version:
                return record.latest
            return record.versions[self._version_index(record, name, version)]

    def update_secret(
        self,
        name: str,
        version: str | None = None,
        *,
        content_type: str | None = None,
        tags: Mapping[str, str] | None = None,
        enabled: bool | None = None,
        nbf: int | None = None,
        exp: int | None = None,
    ) -> SecretVersion:
        """Change one version's properties; ``None`` leaves a property as it is.

        Tags are replaced as a whole when given. The value cannot change (that is a set).
        Disabled versions can be updated (that is how they are re-enabled).
        """
        validate_name(name)
        _validate_properties(tags, content_type)
        with self._lock:
            now = self._now()
            record = self._active.get(name.lower())
            if record is None:
                raise errors.secret_not_found(name, version)
            index = self._version_index(record, name, version) if version else -1
            current = record.versions[index]
            changed = replace(
                current,
                content_type=current.content_type if content_type is None else content_type,
                tags=current.tags if tags is None else dict(tags),
                enabled=current.enabled if enabled is None else enabled,
                nbf=current.nbf if nbf is None else nbf,
                exp=current.exp if exp is None else exp,
                updated=int(now),
            )
            record.versions[index] = changed
            return changed

    def list_secrets(self, marker: str | None, limit: int) -> Page[SecretVersion]:
        """Latest version of every active secret, ordered by case-insensitive name."""
        with self._lock:
            self._now()
            keyed = sorted((key, rec.latest) for key, rec in self._active.items())
        return _paginate(keyed, marker, limit)

    def list_versions(self, name: str, marker: str | None, limit: int) -> Page[SecretVersion]:
        """Every version of one secret, ordered by version id (as the service orders them)."""
        validate_name(name)
        with self._lock:
            self._now()
            record = self._active.get(name.lower())
            # An unknown name lists nothing rather than 404 (inference: the SDK recordings
            # only cover existing names).
            versions = list(record.versions) if record else []
        keyed = sorted((v.version, v) for v in versions)
        return _paginate(keyed, marker, limit)

    # -- soft delete ------------------------------------------------------------------

    def delete_secret(self, name: str) -> DeletedSecret:
        """Soft-delete every version; the deletion completes ``delete_delay`` s later."""
        validate_name(name)
        with self._lock:
            now = self._now()
            key = name.lower()
            record = self._active.pop(key, None)
            if record is None:
                raise errors.secret_not_found(name)
            record.deleted_date = int(now)
            record.scheduled_purge_date = int(now) + RECOVERABLE_DAYS * _DAY
            record.delete_done_at = now + self._delete_delay
            self._deleted[key] = record
            return self._deleted_snapshot(record)

    def get_deleted(self, name: str) -> DeletedSecret:
        """Return a deleted secret: 404 until the delete completes.

        Quirk kept: when the latest version is disabled the service answers 403
        ``SecretDisabled`` here too (azure-sdk-for-js recording ``can update a disabled
        secret``), which the Python SDK's delete poller treats as "done".
        """
        validate_name(name)
        with self._lock:
            now = self._now()
            record = self._deleted.get(name.lower())
            if record is None or self._is_being_deleted(record, now):
                raise errors.deleted_secret_not_found(name)
            if not record.latest.enabled:
                raise errors.secret_disabled()
            return self._deleted_snapshot(record)

    def list_deleted(self, marker: str | None, limit: int) -> Page[DeletedSecret]:
        """Deleted secrets whose deletion has completed, ordered by name."""
        with self._lock:
            now = self._now()
            keyed = sorted(
                (key, self._deleted_snapshot(rec))
                for key, rec in self._deleted.items()
                if not self._is_being_deleted(rec, now)
            )
        return _paginate(keyed, marker, limit)

    def recover(self, name: str) -> SecretVersion:
        """Bring a deleted secret back with all its versions; returns the latest version."""
        with self._lock:
            record = self._take_deleted(name, errors.secret_not_found)
            self._active[name.lower()] = _Record(name=record.name, versions=record.versions)
            return record.latest

    def purge(self, name: str) -> None:
        """Forget a deleted secret for good, freeing its name."""
        with self._lock:
            self._take_deleted(name, errors.deleted_secret_not_found)

    # -- helpers ----------------------------------------------------------------------

    def _take_deleted(self, name: str, missing: Callable[[str], VaultError]) -> _Record:
        """Remove a fully deleted secret from the deleted set (caller holds the lock).

        Recover and purge answer differently when the name is unknown (``missing``), and
        alike while a delete is still in progress.
        """
        validate_name(name)
        now = self._now()
        record = self._deleted.get(name.lower())
        if record is None:
            raise missing(name)
        if self._is_being_deleted(record, now):
            raise errors.being_deleted()
        del self._deleted[name.lower()]
        return record

    def _now(self) -> float:
        """Read the clock and purge deleted secrets past their scheduled purge date."""
        now = self._clock()
        expired = [k for k, rec in self._deleted.items() if rec.scheduled_purge_date <= now]
        for key in expired:
            del self._deleted[key]
        return now

    @staticmethod
    def _is_being_deleted(record: _Record, now: float) -> bool:
        return now < record.delete_done_at

    @staticmethod
    def _version_index(record: _Record, name: str, version: str) -> int:
        wanted = version.lower()
        for index, candidate in enumerate(record.versions):
            if candidate.version == wanted:
                return index
        raise errors.secret_not_found(name, version)

    @staticmethod
    def _deleted_snapshot(record: _Record) -> DeletedSecret:
        return DeletedSecret(record.latest, record.deleted_date, record.scheduled_purge_date)
