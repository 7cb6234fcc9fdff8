"""The sweeper: what events missed, a timer catches.

Each run, in this order:

1. resumes every unfinished rotation that is due: stalled ones (their worker died and the
   lease expired, or a transient failure's back-off has passed) and those awaiting the
   retirement of the previous credential once its grace period is over;
2. starts a rotation for every opted-in, enabled secret whose current version expires within
   ``ROTATOR_SWEEP_WINDOW_DAYS`` or has no expiry at all — events are lost when dead-lettered
   or dropped after 24 hours, are never raised for versions created before the subscription,
   and never for versions without an expiry;
3. disables orphan pending versions: enabled versions of a ``-rotator-pending`` companion
   that no unfinished rotation references (a write whose response was lost, a clean-up that
   failed). Those of an unfinished rotation that has not journaled its pending version yet
   are left alone, since that rotation may still adopt them.

Unfinished rotations include those parked as ``needs-repair`` and ``cleanup-pending``: the
sweeper is what carries them on, with their back-off, until they settle.

A failure on one secret is logged and counted, and the sweep goes on with the next.

Where a work queue is configured (:mod:`rotation.queue`: the Functions storage account), the
sweeper only decides: each due resumption and each due rotation becomes one queue message,
marked in the journal first so that concurrent sweeps enqueue it once, and the host's queue
trigger runs it through the same service path as an event. Without one (a local run on
SQLite), the sweeper does the work itself, one secret after another.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from rotation import telemetry
from rotation.binding import TAG_ROTATION_ID, is_opted_in
from rotation.errors import RotatorError
from rotation.ids import SecretName
from rotation.journal.base import LeaseHeld, NotYetDue
from rotation.journal.model import RotationRecord
from rotation.keyvault import SecretSummary
from rotation.pending import is_pending_companion
from rotation.queue import WorkItem, WorkQueue
from rotation.service import RotationService, RotationTrigger
from rotation.settings import Settings

logger = logging.getLogger(__name__)
_ROTATION_ID = re.compile(r"[0-9a-f]{32}")
#: Work marked queued is not queued again for this long: a message lost (or poisoned) is
#: queued once more after it, while a slow one is not duplicated.
REQUEUE_AFTER = timedelta(hours=1)


@dataclass
class SweepReport:
    """What one sweep did, for its log line and for tests."""

    queued: list[str] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)
    retired: list[str] = field(default_factory=list)
    started: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    orphans_disabled: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {name: len(items) for name, items in vars(self).items()}


class Sweeper:
    """Resumes stalled work, performs due retirements, starts rotations events missed."""

    def __init__(self, *, settings: Settings, service: RotationService,
                 clock: Callable[[], datetime], queue: WorkQueue | None = None) -> None:
        self._settings = settings
        self._service = service
        self._clock = clock
        self._queue = queue

    def sweep(self) -> SweepReport:
        report = SweepReport()
        busy: set[tuple[str, str]] = set()
        for record in self._service.journal.unfinished():
            busy.add((record.vault, record.secret.lower()))
            self._resume(record, report)
        for vault in self._settings.vaults:
            self._start_missed(vault.name, busy, report)
        telemetry.set_open_rotations(Counter(r.status for r in self._service.journal.unfinished()))
        logger.info("sweep finished", extra={"outcome": "swept", **report.counts()})
        return report

    def _resume(self, record: RotationRecord, report: SweepReport) -> None:
        if self._queue is not None:
            if self._due(record):
                stamp = str(int(record.updated_at.timestamp() * 1000))
                self._enqueue(WorkItem("resume", record.vault, record.secret, stamp,
                                       rotation_id=record.rotation_id), report)
            else:
                report.skipped.append(record.rotation_id)
            return
        try:
            after = self._service.resume(record.rotation_id)
        except (LeaseHeld, NotYetDue):
            report.skipped.append(record.rotation_id)
            return
        except RotatorError as exc:
            logger.warning("sweep could not resume a rotation",
                           extra={"rotation_id": record.rotation_id, "error": type(exc).__name__,
                                  "detail": str(exc)})
            report.failed.append(record.rotation_id)
            return
        bucket = report.retired if record.status == "awaiting-retirement" else report.resumed
        bucket.append(after.rotation_id)

    def _start_missed(self, vault: str, busy: set[tuple[str, str]], report: SweepReport) -> None:
        horizon = self._clock() + timedelta(days=self._settings.protocol.sweep_window_days)
        try:
            secrets = self._service.vault_secrets(vault).list_secrets()
        except RotatorError as exc:
            logger.warning("sweep could not list secrets",
                           extra={"vault": vault, "error": type(exc).__name__, "detail": str(exc)})
            report.failed.append(vault)
            return
        ages: dict[str, tuple[float | None, float]] = {}
        for summary in secrets:
            if is_pending_companion(summary.name):
                self._disable_orphans(vault, summary.name, report)
                continue
            if not (summary.enabled and is_opted_in(summary.tags)):
                continue
            ages[summary.name] = self._ages(summary)
            if (vault, summary.name.lower()) in busy:
                continue
            if summary.expires_on is not None and summary.expires_on > horizon:
                continue
            if self._queue is not None:
                listed = str(int(summary.created_on.timestamp())) if summary.created_on else "0"
                self._enqueue(WorkItem("rotate", vault, summary.name, listed), report)
                continue
            self._start(vault, summary.name, report)
        telemetry.set_secret_ages(vault, ages)

    def _due(self, record: RotationRecord) -> bool:
        """Would a claim succeed now: the lease free and the next attempt due?"""
        now = self._clock()
        return ((record.lease_until is None or record.lease_until <= now)
                and (record.next_attempt_at is None or record.next_attempt_at <= now))

    def _enqueue(self, item: WorkItem, report: SweepReport) -> None:
        """Mark the work queued in the journal, then send it; once across concurrent sweeps."""
        assert self._queue is not None
        journal = self._service.journal
        try:
            if not journal.mark_queued(item.vault, item.secret, item.key, now=self._clock(),
                                       ttl=REQUEUE_AFTER):
                report.skipped.append(f"{item.secret}:{item.kind}")
                return
            self._queue.send(item)
        except RotatorError as exc:
            logger.warning("sweep could not queue work", extra={
                "vault": item.vault, "secret": item.secret, "error": type(exc).__name__,
                "detail": str(exc)})
            report.failed.append(item.secret)
            return
        report.queued.append(f"{item.secret}:{item.kind}")

    def _ages(self, summary: SecretSummary) -> tuple[float | None, float]:
        """Days until the current version expires (None: never) and since it was written."""
        now = self._clock()
        day = timedelta(days=1)
        until = (summary.expires_on - now) / day if summary.expires_on else None
        written = summary.created_on or now
        return (round(until, 3) if until is not None else None,
                round(max((now - written) / day, 0.0), 3))

    def _disable_orphans(self, vault: str, companion: str, report: SweepReport) -> None:
        kv = self._service.vault_secrets(vault)
        try:
            for version in kv.versions(companion):
                if version.enabled and self._orphaned(version.tags.get(TAG_ROTATION_ID),
                                                      version.version):
                    kv.disable_version(companion, version.version)
                    report.orphans_disabled.append(f"{companion}/{version.version}")
                    logger.info("disabled an orphan pending version",
                                extra={"outcome": "orphan-disabled", "secret": companion,
                                       "version": version.version})
        except RotatorError as exc:
            logger.warning("sweep could not check pending versions",
                           extra={"vault": vault, "secret": companion,
                                  "error": type(exc).__name__, "detail": str(exc)})
            report.failed.append(companion)

    def _orphaned(self, rotation_id: str | None, version: str) -> bool:
        """No unfinished rotation references this pending version, nor may still adopt it."""
        if not rotation_id or not _ROTATION_ID.fullmatch(rotation_id):
            return True  # not written by a rotation of ours
        record = self._service.journal.get(rotation_id)
        if record is None or record.finished:
            return True
        return record.pending_version is not None and record.pending_version != version

    def _start(self, vault: str, secret: SecretName, report: SweepReport) -> None:
        trigger = RotationTrigger("sweeper", "sweeper")
        try:
            record = self._service.start_for_sweep(vault, secret, trigger)
        except RotatorError as exc:
            logger.warning("sweep could not rotate a secret",
                           extra={"vault": vault, "secret": secret, "error": type(exc).__name__,
                                  "detail": str(exc)})
            report.failed.append(secret)
            return
        if record is not None:
            report.started.append(record.rotation_id)
