"""The rotation's side of propagation: annotate, then hold retirement for the consumers.

The engine calls :meth:`ConsumerGate.propagate` as the ``propagated`` step and
:meth:`ConsumerGate.hold` before ``retired``. Holding never keeps an invocation waiting:
each visit plans and patches the clusters not done yet (one that could not be reached before
is tried again), looks once at every waiting consumer, journals what it saw, and either lets
retirement go on or releases the rotation as ``awaiting-propagation`` until the next visit
(soon; later while clusters keep failing; never past the deadline).

The deadline is promote plus the longest wait (``rotator-max-grace-hours``, or the watch window
where nothing waits to be retired). Past it, retirement goes on with a warning naming every
consumer and cluster that never confirmed. Without tracked consumers (none found, every
cluster answered) nothing is held, and the fixed grace applies as before.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from rotation import telemetry
from rotation.attempt import Progress, StepObserver
from rotation.journal.base import Journal
from rotation.journal.model import RotationRecord
from rotation.propagation.progress import Propagation
from rotation.propagation.propagator import Propagator
from rotation.settings import Settings

logger = logging.getLogger("rotation.engine")
Clock = Callable[[], datetime]
MAX_BACKOFF_DOUBLINGS = 6  # a failing cluster is visited at most every 64 polls


class ConsumerGate:
    """Propagation as two engine steps: annotate, and wait for confirmation."""

    def __init__(self, *, propagator: Propagator, settings: Settings, journal: Journal,
                 clock: Clock, lease: timedelta, observer: StepObserver) -> None:
        self._propagator = propagator
        self._settings = settings
        self._journal = journal
        self._clock = clock
        self._lease = lease
        self._observer = observer

    def propagate(self, progress: Progress, tags: dict[str, str]) -> dict[str, object]:
        """Annotate the ESO objects that read the secret, in every cluster; the plan (each
        consumer's state before) is journaled ahead of the patches."""
        state = self._visit(progress, progress.record.propagation or Propagation(), tags)
        return {"propagation": state}

    def hold(self, progress: Progress, *, tags: dict[str, str], retires: bool, wait_hours: float,
             renew: Callable[[Progress], RotationRecord],
             announce: Callable[[], None]) -> RotationRecord | None:
        """Hold retirement until every tracked consumer confirmed, or the deadline passed.

        Returns the released record while waiting, None to go on (then ``announce`` is told,
        and a retirement waiting for the fixed grace is made due now).
        """
        state = progress.record.propagation
        if state is None or not (state.consumers or state.errors):
            return None
        now = self._clock()
        deadline = deadline_of(progress.record, wait_hours)
        if state.open and now < deadline:
            renew(progress)
            state = self._visit(progress, state, tags, check=True)
            progress.record = self._journal.advance(progress.record, now=self._clock(),
                                                    ttl=self._lease, propagation=state)
            self._observer.inside("propagated", "checked", progress.record)
        if not state.done and now < deadline:
            return self._release(progress, state, deadline)
        if not (state.consumers or state.errors):
            return None  # every cluster answered at last, and none has a consumer
        changes: dict[str, object] = {}
        if not state.done:
            changes["propagation"] = state.with_changes(
                warning=unconfirmed_warning(state, retires=retires, wait_hours=wait_hours))
        else:
            logger.info("every consumer confirmed the new version",
                        extra={"outcome": "propagation-confirmed", "consumers": len(state.consumers)})
        record = progress.record
        if record.retire_after is not None and record.retire_after > now:
            changes["retire_after"] = now  # confirmation (or the deadline) replaces the grace
        if changes:
            progress.record = self._journal.advance(record, now=now, ttl=self._lease, **changes)
        announce()
        return None

    def _visit(self, progress: Progress, state: Propagation, tags: dict[str, str], *,
               check: bool = False) -> Propagation:
        """Plan and patch the clusters not done yet, then (``check``) look at every waiting
        consumer; counts consecutive visits that could not reach every cluster."""
        record = progress.record
        vault = self._settings.vault(record.vault)

        def save(updated: Propagation) -> None:
            progress.record = self._journal.advance(progress.record, now=self._clock(),
                                                    ttl=self._lease, propagation=updated)
            self._observer.inside("propagated", "saved", progress.record)

        visited = self._propagator.trigger(
            state.with_changes(errors=()), save=save, secret=record.secret, tags=tags,
            value=record.rotation_id,
            vault_url=vault.url if vault else f"https://{record.vault}.vault.azure.net")
        if check:
            with telemetry.step("confirm"):
                visited = self._propagator.check(visited)
        if visited.errors:
            logger.warning("a cluster could not be reached", extra={
                "outcome": "cluster-unreachable", "errors": list(visited.errors)})
        return visited.with_changes(failed_checks=state.failed_checks + 1 if visited.errors else 0)

    def _release(self, progress: Progress, state: Propagation, deadline: datetime) -> RotationRecord:
        """Release the rotation until the next visit: soon, later while clusters fail."""
        poll = timedelta(seconds=self._settings.propagation.poll_seconds
                         * 2 ** min(state.failed_checks, MAX_BACKOFF_DOUBLINGS))
        if not state.open:  # only reported consumers left: nothing to look at until then
            poll = deadline - self._clock()
        record = progress.record
        if record.status != "awaiting-propagation":
            record = self._journal.advance(record, now=self._clock(), ttl=self._lease,
                                           status="awaiting-propagation")
        logger.info("waiting for consumers to confirm", extra={
            "outcome": "awaiting-propagation", "waiting": [c.label for c in state.waiting][:20],
            "errors": list(state.errors)})
        error = f"clusters unreachable: {'; '.join(state.errors)}" if state.errors else None
        return self._journal.release(record, now=self._clock(),
                                     next_attempt_at=min(self._clock() + poll, deadline),
                                     last_error=error)


def deadline_of(record: RotationRecord, wait_hours: float) -> datetime:
    """Promote (or a propagation record's start) plus the longest wait."""
    promoted = next((t.completed_at for t in record.steps if t.step == "promoted"),
                    record.created_at)
    return promoted + timedelta(hours=wait_hours)


def unconfirmed_warning(state: Propagation, *, retires: bool, wait_hours: float) -> str:
    """Which consumers and clusters never confirmed, for the history and the log."""
    unconfirmed = [c.label for c in state.unconfirmed]
    names = ", ".join(unconfirmed[:20]) + (f" and {len(unconfirmed) - 20} more"
                                           if len(unconfirmed) > 20 else "")
    parts = [f"without confirmation from: {names}"] if unconfirmed else []
    if state.errors:
        parts.append(f"clusters unreachable: {'; '.join(state.errors)}")
    warning = (f"{'retired' if retires else 'closed'} after the maximum wait of {wait_hours:g} h: "
               + "; ".join(parts))[:2000]
    logger.warning("consumers never confirmed", extra={
        "outcome": "propagation-unconfirmed", "consumers": unconfirmed[:100],
        "errors": list(state.errors)})
    return warning
