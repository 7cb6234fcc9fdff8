"""The rotation journal: what every backend promises, implemented once on three storage calls.

The base class owns every rule; a backend implements only :meth:`Journal._get`,
:meth:`Journal._transact` and :meth:`Journal._query` over flat rows (see
:mod:`rotation.journal.codec`).

Rows of one secret share a partition, ``"{vault}|{secret}"`` in lower case, so each change is
one atomic transaction within it::

    head                   {"rotation_id": id}  the one unfinished rotation, or "" when none
    claim-{from_version}   {"rotation_id": id}  the idempotency key: one rotation per version
    claim-propagate-{version}  the same for a propagation-only record (purpose "propagation")
    rot-{rotation_id}      the RotationRecord
    queued-{key}           {"queued_at": iso}   the sweeper put work ``key`` on the queue

One row lives outside any secret's partition: ``{vault}|`` (no secret name can be empty)
holds ``sweep-companions`` {"checked_from": iso}, when the last sweep that looked at every
companion secret of the vault needing a look began (:meth:`Journal.companions_checked`).

Invariants: a claim row and its rotation row are written together; every unfinished rotation
is named by its partition's head (``begin`` sets it, ``close`` clears it in the same
transaction); every change to a rotation row is conditional on the etag the caller read, so a
worker that lost its lease finds out (:class:`LeaseLost`) before it writes anything.

Lifecycle, as a worker sees it::

    begin ─► claim ─► advance … advance ─► close(succeeded | failed)
               ▲         │ transient failure
               └─ release(next_attempt_at) ◄┘      (or the lease simply expires)
"""

from __future__ import annotations

import logging
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import NamedTuple

from rotation.errors import InvalidRequest
from rotation.ids import RotationId, SecretName, VaultName, VersionId
from rotation.journal import codec
from rotation.journal.codec import RowData, Scalar
from rotation.journal.errors import (
    InvalidTransition,
    JournalConflict,
    JournalError,
    JournalUnavailable,
    LeaseHeld,
    LeaseLost,
    NotYetDue,
    RotationFinished,
    RotationNotFound,
)
from rotation.journal.model import STEPS, UNFINISHED, ClosedStatus, RotationRecord

logger = logging.getLogger(__name__)

HEAD = "head"
CLAIM_PREFIX = "claim-"
ROTATION_PREFIX = "rot-"
QUEUED_PREFIX = "queued-"
COMPANIONS_CHECKED = "sweep-companions"

#: ``last_error`` is cut to this many characters (with a marker) before it is stored.
MAX_ERROR_CHARS = 8_000
#: How often one call re-reads and retries after losing a race; each lost race means another
#: writer succeeded, so this is only reached under pathological contention.
MAX_RACE_RETRIES = 32

_NAME = re.compile(r"[0-9A-Za-z-]{1,127}")
_TOKEN = re.compile(r"[0-9A-Za-z._-]{1,256}")

#: Fields only the journal changes; ``advance``/``close`` refuse them in ``changes``.
JOURNAL_OWNED = frozenset({
    "rotation_id", "vault", "secret", "from_version", "trigger_source", "trigger_reference",
    "trigger_event_type", "created_at", "updated_at", "attempts", "lease_owner", "lease_until",
    "finished_at", "etag", "purpose",
})
_FIELD_NAMES = frozenset(f.name for f in fields(RotationRecord))


# ---- storage primitives -------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class StoredRow:
    """One row as a backend holds it: flat data and an opaque etag that changes on each write."""

    partition: str
    row: str
    data: Mapping[str, Scalar]
    etag: str


@dataclass(frozen=True, slots=True)
class Insert:
    """Create ``row``; the transaction conflicts if it exists."""

    row: str
    data: RowData


@dataclass(frozen=True, slots=True)
class Replace:
    """Overwrite ``row`` whole; the transaction conflicts unless its etag is still ``etag``."""

    row: str
    data: RowData
    etag: str


Operation = Insert | Replace


class QueueMark(NamedTuple):
    """Work ``key`` of one secret, as :meth:`Journal.mark_queued_many` marks it queued."""

    vault: str
    secret: str
    key: str


class StorageConflict(Exception):
    """Raised by ``_transact`` when an Insert's row exists or a Replace's etag no longer matches
    (or its row is gone). Nothing was written. Never leaves the journal."""


# ---- outcomes of begin ----------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Begun:
    """The rotation was recorded and is now the secret's active one."""

    record: RotationRecord


@dataclass(frozen=True, slots=True)
class Duplicate:
    """A rotation from the same version already exists (``record``); nothing was written."""

    record: RotationRecord


@dataclass(frozen=True, slots=True)
class Busy:
    """Another rotation of the secret (``record``) is unfinished; nothing was written."""

    record: RotationRecord


BeginOutcome = Begun | Duplicate | Busy


def partition_key(vault: str, secret: str) -> str:
    """The partition of one secret's rows. Key Vault names are case-insensitive."""
    return f"{_name('vault', vault)}|{_name('secret', secret)}"


def _vault_partition(vault: str) -> str:
    """The partition of a vault's own rows: ``{vault}|``, which no secret's partition is."""
    return f"{_name('vault', vault)}|"


def _name(what: str, name: str) -> str:
    if not _NAME.fullmatch(name):
        raise InvalidRequest(f"{what} name {name!r} is not 1-127 characters of [0-9a-zA-Z-]")
    return name.lower()


def _token(what: str, value: str) -> str:
    if not _TOKEN.fullmatch(value):
        raise InvalidRequest(f"{what} {value!r} is not 1-256 characters of [0-9a-zA-Z._-]")
    return value


def _aware(value: datetime, what: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be a timezone-aware datetime, got a naive one")
    return value


def _capped(error: str) -> str:
    if len(error) <= MAX_ERROR_CHARS:
        return error
    marker = " …[truncated]"
    return error[: MAX_ERROR_CHARS - len(marker)] + marker


class Journal(ABC):
    """The durable record of every rotation. Thread-safe; safe across processes as far as the
    backend's storage is shared (SQLite file, Azure table)."""

    # -- what a backend implements ----------------------------------------------------------

    @abstractmethod
    def _get(self, partition: str, row: str) -> StoredRow | None:
        """The row, or ``None``. Raises JournalUnavailable when storage cannot be reached."""

    @abstractmethod
    def _transact(self, partition: str, ops: Sequence[Operation]) -> dict[str, str]:
        """Apply ``ops`` (distinct rows of one partition) all or none; answer each row's new
        etag. Raises StorageConflict (nothing written) or JournalUnavailable."""

    @abstractmethod
    def _query(self, partition: str | None, row_prefix: str) -> list[StoredRow]:
        """Rows whose key starts with ``row_prefix``, in one partition or (``None``) all."""

    def _insert_each(self, rows: Sequence[tuple[str, str, RowData]]) -> list[bool]:
        """Insert each (partition, row, data) on its own, as if by one ``_transact`` each: a row
        that exists is left as it is and does not stop the others. Answers which were inserted.
        A backend that can do this in one round trip (SQLite: one transaction, one fsync)
        overrides it; Azure Tables cannot (an entity group transaction spans one partition and
        fails whole when one entity exists), so it makes one insert per row, several at a time."""
        inserted = []
        for partition, row, data in rows:
            try:
                self._transact(partition, [Insert(row, data)])
                inserted.append(True)
            except StorageConflict:
                inserted.append(False)
        return inserted

    def shutdown(self) -> None:  # noqa: B027 - optional hook; most backends hold nothing
        """Release connections the backend holds. The journal must not be used afterwards."""

    # -- starting a rotation ----------------------------------------------------------------

    def begin(
        self, record: RotationRecord, *, now: datetime, retry_failed: bool = False
    ) -> BeginOutcome:
        """Record a new rotation of ``record.vault``/``record.secret`` from ``record.from_version``.

        One atomic write of the claim, the rotation and the head, or nothing:

        - a rotation from the same version exists → :class:`Duplicate` (that rotation), unless
          it ``failed`` and ``retry_failed`` is set, when the claim moves to the new rotation;
        - another rotation of the secret is unfinished → :class:`Busy` (that rotation);
        - otherwise → :class:`Begun` with the stored record (its ``etag`` set).

        ``record`` is stored as given (``status`` must be ``running``); ``now`` is the caller's
        clock and only checked. A repeated ``begin`` of the same ``rotation_id`` (say, after a
        lost reply) answers :class:`Begun` with what is stored. Concurrent callers for one
        secret end with exactly one :class:`Begun`.
        """
        _aware(now, "now")
        if record.status != "running":
            raise InvalidTransition(f"a rotation begins running, not {record.status}")
        partition = partition_key(record.vault, record.secret)
        rotation_row = ROTATION_PREFIX + _token("rotation id", record.rotation_id)
        claim_row = CLAIM_PREFIX + ("propagate-" if record.purpose == "propagation" else "") \
            + _token("version", record.from_version)
        data = codec.encode(record)
        pointer: RowData = {"rotation_id": record.rotation_id}
        for _ in range(MAX_RACE_RETRIES):
            ops: list[Operation] = [Insert(rotation_row, data)]
            claim = self._get(partition, claim_row)
            if claim is None:
                ops.append(Insert(claim_row, pointer))
            else:
                existing = self._pointed(partition, claim)
                if existing.rotation_id == record.rotation_id:
                    return Begun(existing)
                if not (retry_failed and existing.status == "failed"):
                    return Duplicate(existing)
                ops.append(Replace(claim_row, pointer, claim.etag))
            head = self._get(partition, HEAD)
            if head is None:
                ops.append(Insert(HEAD, pointer))
            else:
                if head.data.get("rotation_id"):
                    active = self._pointed(partition, head)
                    if not active.finished:
                        return Busy(active)
                ops.append(Replace(HEAD, pointer, head.etag))
            try:
                etags = self._transact(partition, ops)
            except StorageConflict:
                logger.debug("journal begin lost a race; reading again",
                             extra={"rotation_id": record.rotation_id})
                continue
            return Begun(record.with_changes(etag=etags[rotation_row]))
        raise JournalUnavailable(f"begin of rotation {record.rotation_id} kept losing races")

    # -- owning a rotation -------------------------------------------------------------------

    def claim(
        self, rotation: RotationId | str | RotationRecord, *, owner: str, now: datetime,
        ttl: timedelta,
    ) -> RotationRecord:
        """Take (or re-take) the rotation's lease for ``owner`` until ``now + ttl``; one attempt.

        Allowed when nobody holds the lease, ``owner`` does, or it expired (``lease_until <=
        now``). Reads the current row (a record passed in only locates it). Raises
        :class:`LeaseHeld`, :class:`NotYetDue` (``next_attempt_at > now``),
        :class:`RotationFinished` or :class:`RotationNotFound`. Of concurrent claims of one
        expired lease exactly one wins; the others get :class:`LeaseHeld`.
        """
        _aware(now, "now")
        if not owner:
            raise ValueError("owner must be a non-empty string")
        if ttl <= timedelta(0):
            raise ValueError("ttl must be positive")
        for _ in range(MAX_RACE_RETRIES):
            current = self._current(rotation)
            if current.finished:
                raise RotationFinished(
                    f"rotation {current.rotation_id} has {current.status}", current)
            if (current.lease_owner not in (None, owner)
                    and current.lease_until is not None and current.lease_until > now):
                raise LeaseHeld(f"rotation {current.rotation_id} is leased to another worker "
                                f"until {current.lease_until.isoformat()}", current)
            if current.next_attempt_at is not None and current.next_attempt_at > now:
                wait = (current.next_attempt_at - now).total_seconds()
                raise NotYetDue(f"rotation {current.rotation_id} waits until "
                                f"{current.next_attempt_at.isoformat()}", current, retry_after=wait)
            claimed = current.with_changes(
                attempts=current.attempts + 1, lease_owner=owner, lease_until=now + ttl,
                updated_at=now,
            )
            try:
                return self._write(current, claimed)
            except StorageConflict:
                logger.debug("journal claim lost a race; reading again",
                             extra={"rotation_id": current.rotation_id})
        rotation_id = rotation.rotation_id if isinstance(rotation, RotationRecord) else rotation
        raise JournalUnavailable(f"claim of rotation {rotation_id} kept losing races")

    def advance(
        self, record: RotationRecord, *, now: datetime, ttl: timedelta, **changes: object
    ) -> RotationRecord:
        """Save ``changes`` to the rotation ``record`` was read as, and renew the lease.

        ``changes`` may set ``step`` (never backwards), ``steps`` (only appended to),
        ``status`` (one of UNFINISHED), and the other progress fields;
        the journal's own fields are refused (:class:`InvalidTransition`). Raises
        :class:`LeaseLost` with the current record when the row changed since ``record``
        was read: the caller must stop at once.
        """
        _aware(now, "now")
        if ttl <= timedelta(0):
            raise ValueError("ttl must be positive")
        self._check_writable(record, leased=True)
        self._check_changes(record, changes)
        if isinstance(changes.get("last_error"), str):
            changes["last_error"] = _capped(str(changes["last_error"]))
        status = changes.get("status", record.status)
        if status not in UNFINISHED:
            raise InvalidTransition(f"advance cannot set status {status}; use close")
        return self._save(record, record.with_changes(**changes, updated_at=now,
                                                      lease_until=now + ttl))

    def close(
        self,
        record: RotationRecord,
        *,
        now: datetime,
        status: ClosedStatus,
        last_error: str | None = None,
        **changes: object,
    ) -> RotationRecord:
        """Finish the rotation: set ``status`` and ``finished_at``, drop the lease and clear
        the secret's head in the same transaction, so a new rotation may begin.

        ``last_error`` replaces the stored one when given; ``changes`` are applied as in
        :meth:`advance` (for example the final ``step`` and ``steps``). Raises
        :class:`LeaseLost` when the row changed since ``record`` was read.
        """
        _aware(now, "now")
        if status not in ("succeeded", "failed", "superseded"):
            raise InvalidTransition(f"close sets succeeded, failed or superseded, not {status}")
        self._check_writable(record, leased=False)
        if "status" in changes or "next_attempt_at" in changes:
            raise InvalidTransition("close sets status and next_attempt_at itself")
        self._check_changes(record, changes)
        closed = record.with_changes(
            **changes, status=status, finished_at=now, updated_at=now, lease_owner=None,
            lease_until=None, next_attempt_at=None,
            last_error=_capped(last_error) if last_error is not None else record.last_error,
        )
        partition = partition_key(record.vault, record.secret)
        rotation_row = ROTATION_PREFIX + record.rotation_id
        data = codec.encode(closed)
        for _ in range(MAX_RACE_RETRIES):
            ops: list[Operation] = [Replace(rotation_row, data, record.etag or "")]
            head = self._get(partition, HEAD)
            if head is not None and head.data.get("rotation_id") == record.rotation_id:
                ops.append(Replace(HEAD, {"rotation_id": ""}, head.etag))
            try:
                etags = self._transact(partition, ops)
            except StorageConflict as exc:
                current = self._current(record)
                if current == closed:
                    return current  # our own write, retried by the SDK after a lost reply
                if current.etag != record.etag:
                    raise self._lost(current) from exc
                continue  # only the head moved: read it again
            return closed.with_changes(etag=etags[rotation_row])
        raise JournalUnavailable(f"close of rotation {record.rotation_id} kept losing races")

    def release(
        self,
        record: RotationRecord,
        *,
        now: datetime,
        next_attempt_at: datetime | None,
        last_error: str | None,
        refund_attempt: bool = False,
    ) -> RotationRecord:
        """Give up the lease after a transient failure; another worker (or the sweeper) may
        claim the rotation from ``next_attempt_at`` on (``None``: at once). ``last_error``
        replaces the stored one when given; ``refund_attempt`` gives back the attempt the
        claim counted (the service was throttled: the rotation itself did not fail). Raises
        :class:`LeaseLost` as :meth:`advance`."""
        _aware(now, "now")
        if next_attempt_at is not None:
            _aware(next_attempt_at, "next_attempt_at")
        self._check_writable(record, leased=False)
        released = record.with_changes(
            lease_owner=None, lease_until=None, next_attempt_at=next_attempt_at, updated_at=now,
            last_error=_capped(last_error) if last_error is not None else record.last_error,
            attempts=max(0, record.attempts - 1) if refund_attempt else record.attempts,
        )
        return self._save(record, released)

    # -- the sweeper's work queue --------------------------------------------------------------

    def mark_queued(self, vault: VaultName | str, secret: SecretName | str, key: str, *,
                    now: datetime, ttl: timedelta) -> bool:
        """Note that work ``key`` for this secret was put on the queue; True for exactly one
        of any number of concurrent callers, False while an earlier note is younger than
        ``ttl`` (so two sweeps never enqueue the same work twice, and work whose message was
        lost is enqueued again once ``ttl`` has passed)."""
        return self.mark_queued_many([QueueMark(vault, secret, key)], now=now, ttl=ttl)[0]

    def mark_queued_many(self, marks: Sequence[QueueMark], *, now: datetime,
                         ttl: timedelta) -> list[bool]:
        """:meth:`mark_queued` for each of ``marks``, answered in order, with the same promise
        per mark; the new marks are written in one round trip where the backend can
        (:meth:`_insert_each`), which is what makes a sweep with hundreds of due secrets cheap.
        Raises JournalUnavailable, with no promise about which marks were written (a mark
        written and not sent is sent again once ``ttl`` has passed)."""
        _aware(now, "now")
        data: RowData = {"queued_at": now.isoformat()}
        rows = [(partition_key(m.vault, m.secret), QUEUED_PREFIX + _token("queue key", m.key))
                for m in marks]
        inserted = self._insert_each([(partition, row, data) for partition, row in rows])
        return [new or self._renew_mark(partition, row, data, now=now, ttl=ttl)
                for (partition, row), new in zip(rows, inserted, strict=True)]

    def _renew_mark(self, partition: str, row: str, data: RowData, *, now: datetime,
                    ttl: timedelta) -> bool:
        """The mark exists: take it over if it is at least ``ttl`` old (its message may be
        lost); False when it is younger, or another sweep renewed it first."""
        existing = self._get(partition, row)
        if existing is None:
            return False  # removed under us: the next sweep tries again
        queued_at = datetime.fromisoformat(str(existing.data.get("queued_at")))
        if queued_at + ttl > now:
            return False
        try:
            self._transact(partition, [Replace(row, data, existing.etag)])
            return True
        except StorageConflict:
            return False  # another sweep renewed it first

    def note_queue_failure(self, vault: VaultName | str, secret: SecretName | str, key: str,
                           error: str) -> None:
        """Keep the last failure of queued work ``key``, for the poison handler to report."""
        partition = partition_key(vault, secret)
        row = QUEUED_PREFIX + _token("queue key", key)
        existing = self._get(partition, row)
        if existing is None:
            return
        try:
            self._transact(partition, [Replace(row, {**existing.data, "last_error": _capped(error)},
                                               existing.etag)])
        except StorageConflict:
            pass  # a newer note of the same work: its own failure will be kept

    def queue_failure(self, vault: VaultName | str, secret: SecretName | str, key: str) -> str | None:
        """The last failure :meth:`note_queue_failure` kept for work ``key``, if any."""
        existing = self._get(partition_key(vault, secret), QUEUED_PREFIX + _token("queue key", key))
        error = existing.data.get("last_error") if existing is not None else None
        return str(error) if error else None

    # -- the sweeper's look at companion secrets ------------------------------------------------

    def companions_checked(self, vault: VaultName | str) -> datetime | None:
        """When the last sweep that looked at every companion secret of ``vault`` needing a
        look began (:meth:`note_companions_checked`); None before the first."""
        existing = self._get(_vault_partition(vault), COMPANIONS_CHECKED)
        if existing is None:
            return None
        return datetime.fromisoformat(str(existing.data.get("checked_from")))

    def note_companions_checked(self, vault: VaultName | str, began: datetime) -> None:
        """A sweep that began at ``began`` looked at every companion of ``vault`` needing a look.

        One write per sweep. Concurrent sweeps may overwrite each other's note in any order:
        each note is true on its own (everything changed before it was looked at), so the last
        one written is as good as any; a lost race keeps the other sweep's note."""
        _aware(began, "began")
        partition = _vault_partition(vault)
        data: RowData = {"checked_from": began.isoformat()}
        existing = self._get(partition, COMPANIONS_CHECKED)
        op: Operation = (Insert(COMPANIONS_CHECKED, data) if existing is None
                         else Replace(COMPANIONS_CHECKED, data, existing.etag))
        try:
            self._transact(partition, [op])
        except StorageConflict:
            pass  # another sweep's note landed first; it is as true as ours

    # -- reading -----------------------------------------------------------------------------

    def get(self, rotation_id: RotationId | str) -> RotationRecord | None:
        """The rotation with this id, from whichever secret's partition holds it."""
        row = self._find(rotation_id)
        return None if row is None else codec.decode(row.data, etag=row.etag)

    def claimed_by(
        self, vault: VaultName | str, secret: SecretName | str, from_version: VersionId | str
    ) -> RotationRecord | None:
        """The rotation that claimed (vault, secret, from_version), finished or not."""
        partition = partition_key(vault, secret)
        claim = self._get(partition, CLAIM_PREFIX + _token("version", from_version))
        return None if claim is None else self._pointed(partition, claim)

    def for_secret(
        self, vault: VaultName | str, secret: SecretName | str, limit: int = 50
    ) -> list[RotationRecord]:
        """The secret's rotations, newest (``created_at``) first, at most ``limit``."""
        if limit < 1:
            raise ValueError("limit must be at least 1")
        rows = self._query(partition_key(vault, secret), ROTATION_PREFIX)
        records = [codec.decode(row.data, etag=row.etag) for row in rows]
        records.sort(key=lambda r: (r.created_at, r.rotation_id), reverse=True)
        return records[:limit]

    def unfinished(self) -> list[RotationRecord]:
        """Every unfinished rotation of every secret (any status in UNFINISHED), oldest first."""
        found = []
        for head in self._query(None, HEAD):
            if head.row != HEAD or not head.data.get("rotation_id"):
                continue
            record = self._pointed(head.partition, head)
            if not record.finished:
                found.append(record)
        found.sort(key=lambda r: (r.created_at, r.rotation_id))
        return found

    def active(self, vault: VaultName | str, secret: SecretName | str) -> RotationRecord | None:
        """The secret's unfinished rotation, if any."""
        partition = partition_key(vault, secret)
        head = self._get(partition, HEAD)
        if head is None or not head.data.get("rotation_id"):
            return None
        record = self._pointed(partition, head)
        return None if record.finished else record

    # -- the rules ---------------------------------------------------------------------------

    @staticmethod
    def _check_writable(record: RotationRecord, *, leased: bool) -> None:
        """``record`` came from the journal, is unfinished and (``leased``) was claimed."""
        if record.etag is None:
            raise InvalidTransition(
                f"rotation {record.rotation_id}: the record was not read from the journal")
        if record.finished:
            raise RotationFinished(f"rotation {record.rotation_id} has {record.status}", record)
        if leased and record.lease_owner is None:
            raise InvalidTransition(f"rotation {record.rotation_id} must be claimed before it changes")

    @staticmethod
    def _check_changes(record: RotationRecord, changes: Mapping[str, object]) -> None:
        unknown = set(changes) - _FIELD_NAMES
        if unknown:
            raise TypeError(f"RotationRecord has no field(s) {sorted(unknown)}")
        owned = set(changes) & JOURNAL_OWNED
        if owned:
            raise InvalidTransition(f"only the journal sets {sorted(owned)}")
        step = changes.get("step", record.step)
        if step not in STEPS:
            raise InvalidTransition(f"unknown step {step!r}")
        if STEPS.index(step) < STEPS.index(record.step):
            raise InvalidTransition(
                f"rotation {record.rotation_id} cannot go back from step {record.step} to {step}")
        steps = changes.get("steps", record.steps)
        if not isinstance(steps, tuple) or steps[: len(record.steps)] != record.steps:
            raise InvalidTransition("steps is a history: it may only be appended to")

    def _save(self, record: RotationRecord, updated: RotationRecord) -> RotationRecord:
        """Write ``updated`` over ``record``, conditional on ``record.etag``; LeaseLost if stale."""
        try:
            return self._write(record, updated)
        except StorageConflict as exc:
            current = self._current(record)
            if current == updated:  # our own write, retried by the SDK after a lost reply
                return current
            raise self._lost(current) from exc

    def _write(self, current: RotationRecord, updated: RotationRecord) -> RotationRecord:
        partition = partition_key(updated.vault, updated.secret)
        row = ROTATION_PREFIX + updated.rotation_id
        etags = self._transact(partition, [Replace(row, codec.encode(updated), current.etag or "")])
        return updated.with_changes(etag=etags[row])

    @staticmethod
    def _lost(current: RotationRecord) -> LeaseLost:
        return LeaseLost(f"rotation {current.rotation_id} changed since it was read "
                         f"(now {current.status}, step {current.step}, "
                         f"lease {current.lease_owner or 'free'})", current)

    def _current(self, rotation: RotationId | RotationRecord | str) -> RotationRecord:
        if isinstance(rotation, RotationRecord):
            rotation_id: str = rotation.rotation_id
            row = self._get(partition_key(rotation.vault, rotation.secret),
                            ROTATION_PREFIX + _token("rotation id", rotation_id))
        else:
            rotation_id = rotation
            row = self._find(rotation_id)
        if row is None:
            raise RotationNotFound(f"no rotation {rotation_id} in the journal",
                                   rotation_id=rotation_id)
        return codec.decode(row.data, etag=row.etag)

    def _find(self, rotation_id: str) -> StoredRow | None:
        wanted = ROTATION_PREFIX + _token("rotation id", rotation_id)
        rows = [row for row in self._query(None, wanted) if row.row == wanted]
        if len(rows) > 1:
            raise JournalError(f"rotation id {rotation_id} is stored in {len(rows)} partitions")
        return rows[0] if rows else None

    def _pointed(self, partition: str, pointer: StoredRow) -> RotationRecord:
        """The rotation a head or claim row names; JournalError if it is missing."""
        rotation_id = str(pointer.data.get("rotation_id", ""))
        row = self._get(partition, ROTATION_PREFIX + rotation_id)
        if row is None:
            raise JournalError(f"journal row {partition}/{pointer.row} names rotation "
                               f"{rotation_id!r}, which is missing")
        return codec.decode(row.data, etag=row.etag)


__all__ = [  # the errors too, so callers may import everything from here
    "BeginOutcome",
    "Begun",
    "Busy",
    "Duplicate",
    "Insert",
    "InvalidTransition",
    "Journal",
    "JournalConflict",
    "JournalError",
    "JournalUnavailable",
    "LeaseHeld",
    "LeaseLost",
    "NotYetDue",
    "Operation",
    "QueueMark",
    "Replace",
    "RotationFinished",
    "RotationNotFound",
    "StorageConflict",
    "StoredRow",
    "partition_key",
]
