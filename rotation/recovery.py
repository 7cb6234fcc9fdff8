"""When a rotation cannot go on: decide from the world, never from the journal alone.

A rotation gives up (a permanent error, or its attempts used up) or is repaired by the
sweeper; either way :meth:`Recovery.settle` looks at what is true *now* before it writes an
outcome, because a lost response or a person may have changed the world behind the journal:

1. Key Vault's current version carries this rotation's id → the rotation's promote landed
   (its response was lost): it only rolls forward; cleanup continues (``cleanup-pending``).
2. A newer version someone else wrote is current → the rotation is **superseded**: nothing of
   that version is overwritten or touched; the pending version is disabled.
3. The version being rotated is still current → prove that it logs in, or put its credential
   back and prove that: the rotation closes **failed** ("nothing changed" or "rolled back",
   each verified). If neither can be proven (the target or Key Vault unreachable, the secret
   deleted, its tags broken) the rotation stays open as **needs-repair**, and the sweeper
   comes back with back-off until one of the above holds.

After promote nothing is ever rolled back: failures there (disabling the pending version,
retiring the previous credential) leave the rotation ``cleanup-pending`` and the sweeper
retries them, however long it takes. ``last_error`` states only what was verified.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from rotation import telemetry
from rotation.binding import TAG_ROTATION_ID, read_credential
from rotation.context import RotationContext
from rotation.errors import RotatorError, SecretNotFound
from rotation.journal.base import Journal
from rotation.journal.model import ClosedStatus, RotationRecord, StepTiming
from rotation.keyvault import KeyVaultSecrets, SecretVersion
from rotation.pending import clear_pending, find_pending, read_pending
from rotation.settings import ProtocolSettings

logger = logging.getLogger(__name__)
MAX_BACKOFF = timedelta(hours=1)


class Recovery:
    """Settles rotations that cannot go on, and parks those that must wait."""

    def __init__(self, *, journal: Journal, vaults: Callable[[str], KeyVaultSecrets],
                 context: Callable[[RotationRecord], RotationContext],
                 clock: Callable[[], datetime], protocol: ProtocolSettings) -> None:
        self._journal = journal
        self._vaults = vaults
        self._context = context
        self._clock = clock
        self._protocol = protocol

    @property
    def _lease(self) -> timedelta:
        return timedelta(seconds=self._protocol.lease_seconds)

    def backoff(self, record: RotationRecord) -> datetime:
        """When the next attempt may start: doubling per attempt, at most an hour."""
        wait = timedelta(seconds=self._protocol.attempt_backoff_seconds
                         * 2 ** max(0, record.attempts - 1))
        return self._clock() + min(wait, MAX_BACKOFF)

    # -- the decision --------------------------------------------------------------------

    def settle(self, record: RotationRecord, reason: str) -> RotationRecord:
        """Close or park a rotation that cannot go on, by what Key Vault and the target say."""
        if not record.done("prepared"):
            # Nothing reached the target: prepare stores the pending credential before apply,
            # and promote needs prepare journaled. A pending version it may have stored
            # unjournaled is disabled here, or later by the sweeper as an orphan.
            self._clear_unjournaled_pending(record)
            return self._close(record, "failed", f"{reason}; nothing had changed")
        try:
            latest = self._vaults(record.vault).latest(record.secret)
        except SecretNotFound:
            return self.needs_repair(record, f"{reason}; the secret is gone from Key Vault "
                                             "(deleted?): kept open until it is back")
        except Exception as exc:
            return self.needs_repair(record, f"{reason}; Key Vault could not be read "
                                             f"({_kind(exc)})")
        if latest.tags.get(TAG_ROTATION_ID) == record.rotation_id:
            return self._roll_forward(record, latest, reason)
        if latest.version != record.from_version:
            return self._supersede(record, latest, reason)
        return self._roll_back(record, reason)

    def needs_repair(self, record: RotationRecord, why: str) -> RotationRecord:
        """Keep the rotation open, visibly, for the sweeper to come back to."""
        if record.status != "needs-repair":
            record = self._journal.advance(record, now=self._clock(), ttl=self._lease,
                                           status="needs-repair")
            telemetry.count_repair()
        logger.warning("rotation needs repair", extra={"outcome": "needs-repair", "detail": why})
        return self._journal.release(record, now=self._clock(),
                                     next_attempt_at=self.backoff(record), last_error=why)

    def cleanup_later(self, record: RotationRecord, why: str) -> RotationRecord:
        """After promote: the rotation took effect; its cleanup is retried, never failed."""
        if record.status not in ("cleanup-pending", "awaiting-retirement"):
            record = self._journal.advance(record, now=self._clock(), ttl=self._lease,
                                           status="cleanup-pending")
        logger.warning("rotation cleanup outstanding",
                       extra={"outcome": "cleanup-pending", "detail": why})
        return self._journal.release(record, now=self._clock(),
                                     next_attempt_at=self.backoff(record),
                                     last_error=f"cleanup outstanding: {why}")

    # -- the outcomes --------------------------------------------------------------------

    def _roll_forward(self, record: RotationRecord, latest: SecretVersion,
                      reason: str) -> RotationRecord:
        """Promote landed but was never journaled: record it, and let cleanup continue."""
        if not record.done("promoted"):
            now = self._clock()
            grace = timedelta(hours=self._grace_hours(record))
            timing = StepTiming(step="promoted", completed_at=now, duration_ms=0.0,
                                attempt=record.attempts)
            record = self._journal.advance(
                record, now=now, ttl=self._lease, step="promoted", steps=(*record.steps, timing),
                new_version=latest.version, new_expiry=latest.expires_on,
                retire_after=now + grace)
            logger.info("this rotation's version is current: rolling forward",
                        extra={"outcome": "rolled-forward", "new_version": latest.version})
        return self.cleanup_later(record, f"{reason}; this rotation's version "
                                          f"{latest.version} is current, so it only goes forward")

    def _supersede(self, record: RotationRecord, latest: SecretVersion,
                   reason: str) -> RotationRecord:
        """Someone else's newer version is current: touch it not at all, report on it."""
        works = self._logs_in(record, latest)
        pending = "no pending version had been stored"
        if record.pending_version:
            if works != "yes" and self._pending_logs_in(record):
                # The newer version does not (provably) work and the pending one does: keep
                # it, so the one credential known to work is not lost.
                pending = (f"the pending version {record.pending_version} logs in and was "
                           "kept for an operator")
            else:
                self._disable_pending(record, record.pending_version)
                pending = "the pending version was disabled"
        return self._close(
            record, "superseded",
            f"{reason}; version {latest.version}, written outside this rotation, is current "
            f"and was left as it is (it logs in: {works}); {pending}")

    def _roll_back(self, record: RotationRecord, reason: str) -> RotationRecord:
        """The rotated version is still current: prove it works, putting it back if needed."""
        ctx: RotationContext | None = None
        try:
            ctx = self._context(record)
            if ctx.target.accepts(ctx.previous):
                self._clear_pending(ctx, record)
                return self._close(record, "failed", f"{reason}; the current Key Vault version "
                                                     f"{record.from_version} logs in (verified)")
            pending = read_pending(ctx.kv, record.secret, record.pending_version or "")
            ctx.target.apply(pending, ctx.previous)
            ctx.target.verify(ctx.previous)
            self._clear_pending(ctx, record)
        except Exception as exc:
            self._disable_pending_if_refused(ctx, record)
            return self.needs_repair(
                record, f"{reason}; could not prove that the current Key Vault version "
                        f"{record.from_version} logs in, nor put it back ({_kind(exc)}): the "
                        "sweeper keeps trying")
        return self._close(record, "failed", f"{reason}; the previous credential was put back "
                                             f"and version {record.from_version} logs in (verified)")

    # -- helpers -------------------------------------------------------------------------

    def _close(self, record: RotationRecord, status: ClosedStatus, why: str) -> RotationRecord:
        closed = self._journal.close(record, now=self._clock(), status=status, last_error=why)
        level = logging.WARNING if status == "superseded" else logging.ERROR
        logger.log(level, f"rotation closed as {status}", extra={"outcome": status,
                                                                 "detail": why})
        return closed

    def _logs_in(self, record: RotationRecord, latest: SecretVersion) -> str:
        """'yes', 'no' or 'unknown': does the newer version's credential log in?"""
        try:
            ctx = self._context(record)
            credential = read_credential(latest.value, latest.content_type, None)
            return "yes" if ctx.target.accepts(credential) else "no"
        except Exception as exc:
            logger.info("could not check the superseding version", extra={"error": _kind(exc)})
            return "unknown"

    def _pending_logs_in(self, record: RotationRecord) -> bool:
        try:
            ctx = self._context(record)
            return ctx.target.accepts(read_pending(ctx.kv, record.secret,
                                                   record.pending_version or ""))
        except Exception as exc:
            logger.info("could not check the pending credential", extra={"error": _kind(exc)})
            return False

    def _grace_hours(self, record: RotationRecord) -> float:
        try:
            ctx = self._context(record)
        except Exception:
            return self._protocol.grace_hours
        return ctx.binding.grace_hours if ctx.target.retires_previous else 0.0

    def _disable_pending_if_refused(self, ctx: RotationContext | None,
                                    record: RotationRecord) -> None:
        """While repair waits, a pending credential the target provably refuses is of no use
        to anyone: disable it. One it accepts, or one nobody could check, stays enabled."""
        if ctx is None or not record.pending_version:
            return
        try:
            pending = read_pending(ctx.kv, record.secret, record.pending_version)
            if not ctx.target.accepts(pending):
                clear_pending(ctx.kv, record.secret, record.pending_version)
        except Exception as exc:
            logger.info("could not check the pending credential", extra={"error": _kind(exc)})

    def _clear_pending(self, ctx: RotationContext, record: RotationRecord) -> None:
        if record.pending_version:
            clear_pending(ctx.kv, record.secret, record.pending_version)

    def _disable_pending(self, record: RotationRecord, version: str) -> None:
        try:
            clear_pending(self._vaults(record.vault), record.secret, version)
        except Exception as exc:
            logger.warning("could not disable the pending version", extra={"error": _kind(exc)})

    def _clear_unjournaled_pending(self, record: RotationRecord) -> None:
        """A pending version stored just before the failure, never journaled: disable it."""
        try:
            kv = self._vaults(record.vault)
            found = find_pending(kv, record.secret, record.rotation_id)
            if found is not None:
                clear_pending(kv, record.secret, found[0])
        except Exception as exc:
            logger.warning("could not disable an unjournaled pending version",
                           extra={"error": _kind(exc)})


def _kind(exc: BaseException) -> str:
    """An error for the journal: our own messages never hold values; a library's might."""
    return f"{type(exc).__name__}: {exc}" if isinstance(exc, RotatorError) else type(exc).__name__
