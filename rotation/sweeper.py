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

Listing a companion's versions is one Key Vault call per companion, and a vault with 5,000
rotated secrets has 5,000 companions: more than Key Vault's 4,000 reads per 10 s, on every
sweep. So only a companion that can hold an orphan is looked at. The vault's listing gives
each companion's *latest* version's attributes, and a companion is looked at when

- (a) that version is enabled: it may be an orphan itself;
- (b) it changed (``updated_on``) since the last sweep that looked at every companion needing
  a look began (:meth:`~rotation.journal.base.Journal.companions_checked`, one journal write
  per sweep, less :data:`COMPANION_CLOCK_SKEW` for the two clocks), or there is no such sweep;
- (c) an unfinished rotation of its secret may have written to it.

Why that is enough: the rotator never enables a version, so a new orphan comes from a new
version (the companion changes: a or b) or from a rotation finishing with its version still
enabled. A rotation writes one version; while it is unfinished its companion is looked at
(c); if it finishes with its version enabled and latest, (a); if a later rotation has written
since, the companion changed after the earlier look (b) — a write whose response was lost
followed by another rotation between two sweeps, for one. A clean-up that failed parks the
rotation ``cleanup-pending``, which is unfinished (c) until its resumption disables the version.
In a settled vault (every rotation finished, its pending version disabled long enough ago) no
companion is looked at. What is not seen: an older version enabled again by hand, or a
rotation that wrote two versions (a retried write that failed to find its first) finishing
between two sweeps with the older one enabled; either is found the next time the companion
changes, at the secret's next rotation at the latest.

Unfinished rotations include those parked as ``needs-repair`` and ``cleanup-pending``: the
sweeper is what carries them on, with their back-off, until they settle.

A failure on one secret is logged and counted, and the sweep goes on with the next.

Where a work queue is configured (:mod:`rotation.queue`: the Functions storage account), the
sweeper only decides: each due resumption and each due rotation becomes one queue message,
marked in the journal first so that concurrent sweeps enqueue it once, and the host's queue
trigger runs it through the same service path as an event. Without one (a local run on
SQLite), the sweeper does the work itself, one secret after another.

Fanning out costs one journal mark and one queue message per piece of work. Done one after
the other inside the listing, 300 due secrets cost more than paging through 10,000 (issue
#14), so the marks of a batch (the resumptions; then each vault's rotations) are written in one
journal round trip (:meth:`~rotation.journal.base.Journal.mark_queued_many`), and the messages
are sent by :data:`SEND_THREADS` threads while the sweep goes on to the companions and the next
vault; the sweep waits for every send before it reports. A mark is always written before its
message is sent, and a send that fails is reported and logged for its secret as before.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from rotation import telemetry
from rotation.binding import TAG_ROTATION_ID, is_opted_in
from rotation.errors import RotatorError
from rotation.ids import SecretName
from rotation.journal.base import Journal, LeaseHeld, NotYetDue, QueueMark
from rotation.journal.model import RotationRecord
from rotation.keyvault import SecretSummary
from rotation.pending import is_pending_companion, pending_name
from rotation.queue import WorkItem, WorkQueue
from rotation.service import RotationService, RotationTrigger
from rotation.settings import Settings

logger = logging.getLogger(__name__)
_ROTATION_ID = re.compile(r"[0-9a-f]{32}")
#: Work marked queued is not queued again for this long: a message lost (or poisoned) is
#: queued once more after it, while a slow one is not duplicated.
REQUEUE_AFTER = timedelta(hours=1)
#: Messages in flight at once. Each send is one small HTTP request that mostly waits, so a
#: few threads hide most of that wait; more would only queue up behind the GIL.
SEND_THREADS = 8
#: Key Vault's clock and ours may disagree: a companion changed up to this long before the
#: last complete look at the companions began is looked at again (sweeps are minutes apart).
COMPANION_CLOCK_SKEW = timedelta(minutes=5)


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


class _FanOut:
    """One sweep's work on its way to the queue: each batch marked in the journal in one round
    trip, then the work this sweep marked sent by a few threads while the sweep goes on.
    :meth:`close` waits for every send and reports each, in the order they were put."""

    def __init__(self, queue: WorkQueue, journal: Journal, clock: Callable[[], datetime],
                 report: SweepReport) -> None:
        self._queue, self._journal, self._clock, self._report = queue, journal, clock, report
        self._pool = ThreadPoolExecutor(SEND_THREADS, thread_name_prefix="sweep-send")
        self._sending: list[tuple[WorkItem, Future[None]]] = []

    def put(self, items: list[WorkItem]) -> None:
        """Mark ``items`` queued, then start sending those this sweep marked (the others were
        queued by another sweep, less than :data:`REQUEUE_AFTER` ago)."""
        if not items:
            return
        try:
            marked = self._journal.mark_queued_many(
                [QueueMark(item.vault, item.secret, item.key) for item in items],
                now=self._clock(), ttl=REQUEUE_AFTER)
        except RotatorError as exc:
            for item in items:
                self._failed(item, exc)
            return
        for item, ours in zip(items, marked, strict=True):
            if ours:
                self._sending.append((item, self._pool.submit(self._queue.send, item)))
            else:
                self._report.skipped.append(f"{item.secret}:{item.kind}")

    def close(self) -> None:
        try:
            for item, sending in self._sending:
                error = sending.exception()
                if error is None:
                    self._report.queued.append(f"{item.secret}:{item.kind}")
                elif isinstance(error, RotatorError):
                    self._failed(item, error)
                else:
                    raise error  # a bug: as loud as it would be without the threads
        finally:
            self._pool.shutdown(wait=True)

    def _failed(self, item: WorkItem, exc: RotatorError) -> None:
        logger.warning("sweep could not queue work", extra={
            "vault": item.vault, "secret": item.secret, "error": type(exc).__name__,
            "detail": str(exc)})
        self._report.failed.append(item.secret)


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
        fan_out = (None if self._queue is None
                   else _FanOut(self._queue, self._service.journal, self._clock, report))
        try:
            resumptions: list[WorkItem] = []
            for record in self._service.journal.unfinished():
                busy.add((record.vault, record.secret.lower()))
                if fan_out is None:
                    self._resume(record, report)
                elif self._due(record):
                    resumptions.append(self._resumption(record))
                else:
                    report.skipped.append(record.rotation_id)
            if fan_out is not None:
                fan_out.put(resumptions)
            for vault in self._settings.vaults:
                self._start_missed(vault.name, busy, report, fan_out)
        finally:
            if fan_out is not None:
                fan_out.close()
        telemetry.set_open_rotations(Counter(r.status for r in self._service.journal.unfinished()))
        logger.info("sweep finished", extra={"outcome": "swept", **report.counts()})
        return report

    @staticmethod
    def _resumption(record: RotationRecord) -> WorkItem:
        stamp = str(int(record.updated_at.timestamp() * 1000))
        return WorkItem("resume", record.vault, record.secret, stamp, rotation_id=record.rotation_id)

    def _resume(self, record: RotationRecord, report: SweepReport) -> None:
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

    def _start_missed(self, vault: str, busy: set[tuple[str, str]], report: SweepReport,
                      fan_out: _FanOut | None) -> None:
        began = self._clock()
        horizon = began + timedelta(days=self._settings.protocol.sweep_window_days)
        changed_since = self._companions_changed_since(vault)
        try:
            secrets = self._service.vault_secrets(vault).list_secrets()
        except RotatorError as exc:
            logger.warning("sweep could not list secrets",
                           extra={"vault": vault, "error": type(exc).__name__, "detail": str(exc)})
            report.failed.append(vault)
            return
        watched = {pending_name(secret) for v, secret in busy if v == vault}
        companions: list[SecretName] = []
        due: list[WorkItem] = []
        ages: dict[str, tuple[float | None, float]] = {}
        for summary in secrets:
            if is_pending_companion(summary.name):
                if self._needs_look(summary, changed_since, watched):
                    companions.append(summary.name)
                continue
            if not (summary.enabled and is_opted_in(summary.tags)):
                continue
            ages[summary.name] = self._ages(summary)
            if (vault, summary.name.lower()) in busy:
                continue
            if summary.expires_on is not None and summary.expires_on > horizon:
                continue
            if fan_out is not None:
                listed = str(int(summary.created_on.timestamp())) if summary.created_on else "0"
                due.append(WorkItem("rotate", vault, summary.name, listed))
                continue
            self._start(vault, summary.name, report)
        if fan_out is not None:
            fan_out.put(due)  # sent while the companions are looked at
        telemetry.set_secret_ages(vault, ages)
        looked = [self._disable_orphans(vault, companion, report) for companion in companions]
        if all(looked):
            self._note_companions_checked(vault, began)

    @staticmethod
    def _needs_look(summary: SecretSummary, changed_since: datetime | None,
                    watched: set[str]) -> bool:
        """Can this companion hold an orphan (the cases are in the module's docstring)?"""
        return (summary.enabled                                        # (a)
                or changed_since is None or summary.updated_on is None  # (b)
                or summary.updated_on >= changed_since
                or summary.name.lower() in watched)                    # (c)

    def _companions_changed_since(self, vault: str) -> datetime | None:
        """Companions changed after this may hold an orphan; None: look at every one."""
        try:
            checked = self._service.journal.companions_checked(vault)
        except RotatorError as exc:
            logger.warning("sweep could not read when companions were last checked",
                           extra={"vault": vault, "error": type(exc).__name__, "detail": str(exc)})
            return None
        return None if checked is None else checked - COMPANION_CLOCK_SKEW

    def _note_companions_checked(self, vault: str, began: datetime) -> None:
        try:
            self._service.journal.note_companions_checked(vault, began)
        except RotatorError as exc:  # the next sweep looks at more companions: harmless
            logger.warning("sweep could not note that companions were checked",
                           extra={"vault": vault, "error": type(exc).__name__, "detail": str(exc)})

    def _due(self, record: RotationRecord) -> bool:
        """Would a claim succeed now: the lease free and the next attempt due?"""
        now = self._clock()
        return ((record.lease_until is None or record.lease_until <= now)
                and (record.next_attempt_at is None or record.next_attempt_at <= now))

    def _ages(self, summary: SecretSummary) -> tuple[float | None, float]:
        """Days until the current version expires (None: never) and since it was written."""
        now = self._clock()
        day = timedelta(days=1)
        until = (summary.expires_on - now) / day if summary.expires_on else None
        written = summary.created_on or now
        return (round(until, 3) if until is not None else None,
                round(max((now - written) / day, 0.0), 3))

    def _disable_orphans(self, vault: str, companion: str, report: SweepReport) -> bool:
        """Disable the companion's orphan versions; False when it could not be looked at."""
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
            return False
        return True

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
