"""The rotation service: decides what an event, a request or a sweep asks for.

It never rotates by itself: it opens a rotation in the journal (which makes duplicates and
concurrent requests start nothing new), takes the rotation's lease, and hands it to the
:class:`~rotation.engine.RotationEngine`. Resuming a rotation a dead worker left behind is
the same path: take the lease once it has expired, and run.

Idempotency key: (vault, secret, version being rotated). A redelivered or replayed event for
that version finds the existing rotation and, at most, resumes it.

A rotation this service opens is begun already leased to this worker (its first attempt
counted, its target named), so the journal records the start and the claim in one write, and
no other worker can take it between the two; the engine is then handed the current version
this call read just before, which it would otherwise read again (:class:`Opening`).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from rotation.attempt import Opening
from rotation.binding import is_opted_in, is_own_write, read_binding
from rotation.catalogue import BoundSecret
from rotation.engine import RotationEngine
from rotation.errors import (
    BindingRefused,
    ConcurrentRotation,
    SecretNotFound,
    SecretNotRotatable,
    Throttled,
    TransientError,
)
from rotation.events import KeyVaultEvent
from rotation.ids import RotationId, SecretName, VaultName, VersionId
from rotation.journal.base import (
    Begun,
    Busy,
    Journal,
    LeaseHeld,
    NotYetDue,
)
from rotation.journal.model import RotationRecord, TriggerSource
from rotation.keyvault import KeyVaultSecrets, SecretVersion
from rotation.pending import is_pending_companion
from rotation.queue import WorkItem
from rotation.settings import Settings

logger = logging.getLogger(__name__)

Decision = Literal["rotated", "resumed", "ignored", "refused", "not-rotatable",
                   "awaiting-propagation", "awaiting-retirement", "cleanup-pending",
                   "needs-repair", "superseded"]
_PARKED: frozenset[str] = frozenset({"awaiting-propagation", "awaiting-retirement",
                                     "cleanup-pending", "needs-repair"})
Clock = Callable[[], datetime]
VaultDirectory = Callable[[VaultName], KeyVaultSecrets]


@dataclass(frozen=True, slots=True)
class RotationTrigger:
    """What asked for a rotation: an event (its id and type), an HTTP caller, the sweeper."""

    source: TriggerSource
    reference: str
    event_type: str | None = None


@dataclass(frozen=True, slots=True)
class EventOutcome:
    """What an event led to, and why; ``record`` is the rotation it started or resumed."""

    decision: Decision
    reason: str
    record: RotationRecord | None = None


class RotationService:
    """Turns events and requests into journaled rotations of opted-in secrets."""

    def __init__(
        self, *, settings: Settings, vaults: VaultDirectory, journal: Journal,
        engine: RotationEngine, clock: Clock, worker_id: str,
        new_rotation_id: Callable[[], str] = lambda: uuid.uuid4().hex,
    ) -> None:
        self._settings = settings
        self._vaults = vaults
        self._journal = journal
        self._engine = engine
        self._clock = clock
        self.worker_id = worker_id
        self._new_rotation_id = new_rotation_id

    @property
    def journal(self) -> Journal:
        return self._journal

    # -- events ------------------------------------------------------------------------

    def handle_event(self, event: KeyVaultEvent) -> EventOutcome:
        """Decide what a Key Vault event asks for; rotate or resume when it asks for that."""
        if self._settings.vault(event.vault) is None:
            return EventOutcome("refused", f"vault {event.vault!r} is not in the allowlist")
        kv = self._vaults(event.vault)
        if not event.asks_for_rotation:
            return self._new_version_outcome(kv, event)
        try:
            current = kv.latest(event.secret)
        except SecretNotFound:
            return EventOutcome("ignored", "the secret no longer exists")
        except SecretNotRotatable as exc:
            return EventOutcome("ignored", str(exc))
        if current.version != event.version:
            return self._stale(event, current.version)
        if not current.enabled:
            return EventOutcome("ignored", "the current version is disabled")
        if not is_opted_in(current.tags):
            return EventOutcome("ignored", "the secret is not opted in to rotation")
        try:
            bound = self._preflight(current)
        except BindingRefused as exc:
            return EventOutcome("refused", str(exc))
        except SecretNotRotatable as exc:
            return EventOutcome("not-rotatable", str(exc))
        trigger = RotationTrigger("event", event.event_id, event_type=event.kind)
        return self._start_for_event(event.vault, event.secret, current, bound, trigger)

    def _stale(self, event: KeyVaultEvent, current: str) -> EventOutcome:
        """An old version's event: nothing new, but finish that version's rotation if stuck."""
        existing = self._journal.claimed_by(event.vault, event.secret, event.version)
        if existing is not None and not existing.finished:
            return self._resume_for_event(existing)
        return EventOutcome("ignored", f"stale event: it names version {event.version}, the "
                                       f"current one is {current}")

    def _new_version_outcome(self, kv: KeyVaultSecrets, event: KeyVaultEvent) -> EventOutcome:
        try:
            written = kv.version(event.secret, event.version)
        except (SecretNotFound, SecretNotRotatable):
            return EventOutcome("ignored", "the new version is gone or disabled")
        if is_own_write(written.tags) or is_pending_companion(event.secret):
            return EventOutcome("ignored", "akv-rotator wrote this version itself")
        if not self._settings.propagation.clusters:
            return EventOutcome("ignored", "a new version written outside akv-rotator needs no "
                                           "rotation, and no cluster is configured to propagate it")
        if self._same_value_as_before(kv, written):
            return EventOutcome("ignored", "the new version holds the same value as the one before "
                                           "(tags or expiry changed, as onboarding does): nothing "
                                           "new for the clusters; ESO's own refresh carries tags")
        return self._propagate_by_hand(event)

    @staticmethod
    def _same_value_as_before(kv: KeyVaultSecrets, written: SecretVersion) -> bool:
        """True when the version created just before ``written`` holds the same value, so a
        force-sync would change no Secret and restart nothing, only hold the secret's next
        rotation back while the propagation record watches.

        Key Vault's creation times are whole seconds: when that order is ambiguous (another
        version in the same second as ``written`` or as the one before it), the answer is
        False and the version is propagated, the safe side."""
        try:
            created = written.created_on
            earlier = [v for v in kv.versions(written.name) if v.version != written.version
                       and v.created_on is not None and created is not None and v.created_on <= created]
            if not earlier:
                return False
            newest = max(v.created_on for v in earlier if v.created_on is not None)
            before = [v for v in earlier if v.created_on == newest]
            if len(before) != 1 or newest == created:
                return False
            return kv.version(written.name, before[0].version).value == written.value
        except (SecretNotFound, SecretNotRotatable):
            return False

    def _propagate_by_hand(self, event: KeyVaultEvent) -> EventOutcome:
        """A version someone wrote by hand: carry it into the clusters now (no rotation)."""
        trigger = RotationTrigger("event", event.event_id, event_type=event.kind)
        record = self._new_record(event.vault, event.secret, event.version, trigger).with_changes(
            purpose="propagation", step="promoted", new_version=event.version)
        opened = self._journal.begin(record, now=self._clock())
        if isinstance(opened, Begun):
            done = self.resume(opened.record.rotation_id)
            return EventOutcome(_decision(done), "propagated a version written by hand", done)
        if isinstance(opened, Busy):
            return EventOutcome("ignored", f"rotation {opened.record.rotation_id} of this secret "
                                           "is unfinished; ESO's own refresh carries this version")
        return self._resume_for_event(opened.record) if not opened.record.finished else \
            EventOutcome("ignored", "this version was already propagated", opened.record)

    def _start_for_event(self, vault: VaultName, secret: SecretName, current: SecretVersion,
                         bound: BoundSecret, trigger: RotationTrigger) -> EventOutcome:
        opened = self._journal.begin(self._leased_record(vault, secret, current, bound, trigger),
                                     now=self._clock())
        if isinstance(opened, Begun):
            record = self._run_begun(opened.record, current)
            return EventOutcome(_decision(record), f"rotated after {trigger.event_type}", record)
        existing = opened.record
        if existing.finished:
            return EventOutcome("ignored", f"duplicate: rotation {existing.rotation_id} of this "
                                           f"version already {existing.status}", existing)
        return self._resume_for_event(existing)

    def _resume_for_event(self, existing: RotationRecord) -> EventOutcome:
        """Resume an unfinished rotation if its lease is free; else let Event Grid retry."""
        try:
            record = self.resume(existing.rotation_id)
        except LeaseHeld as exc:
            raise TransientError(
                f"rotation {existing.rotation_id} is in progress in another worker",
                retry_after=self._settings.protocol.lease_seconds,
            ) from exc
        except NotYetDue as exc:
            due = exc.record.next_attempt_at
            if exc.record.status in _PARKED:
                return EventOutcome("ignored", f"the rotation is {exc.record.status}; the "
                                               "sweeper carries it on", exc.record)
            wait = (due - self._clock()).total_seconds() if due else None
            raise TransientError(f"rotation {existing.rotation_id} waits until its next attempt",
                                 retry_after=wait) from exc
        return EventOutcome(_decision(record, resumed=True),
                            f"resumed rotation {record.rotation_id}", record)

    # -- operators ---------------------------------------------------------------------

    def request_rotation(self, vault: VaultName, secret: SecretName,
                         trigger: RotationTrigger) -> RotationRecord:
        """Rotate now at an operator's request; 409-style errors when that cannot start."""
        kv = self._vaults(vault)
        current = kv.latest(secret)
        bound = self._preflight(current)
        opened = self._journal.begin(self._leased_record(vault, secret, current, bound, trigger),
                                     now=self._clock(), retry_failed=True)
        if isinstance(opened, Begun):
            return self._run_begun(opened.record, current)
        existing = opened.record
        if isinstance(opened, Busy) or not existing.finished:
            raise ConcurrentRotation(
                f"rotation {existing.rotation_id} of {secret!r} is {existing.status} "
                f"(step {existing.step})", rotation_id=existing.rotation_id)
        raise ConcurrentRotation(
            f"version {current.version} was already rotated by {existing.rotation_id} "
            f"({existing.status})", rotation_id=existing.rotation_id)

    def start_for_sweep(self, vault: str, secret: SecretName,
                        trigger: RotationTrigger) -> RotationRecord | None:
        """Rotate a secret the sweeper found close to expiry; None if one is already open."""
        vault_name = VaultName(vault)
        current = self._vaults(vault_name).latest(secret)
        bound = self._preflight(current)
        opened = self._journal.begin(self._leased_record(vault_name, secret, current, bound,
                                                         trigger),
                                     now=self._clock())
        if not isinstance(opened, Begun):
            return None
        return self._run_begun(opened.record, current)

    # -- the sweeper's work queue --------------------------------------------------------------

    def run_queued(self, item: WorkItem, reference: str) -> RotationRecord | None:
        """Do one piece of queued work (:mod:`rotation.queue`) as the sweeper would.

        Raises what happened *before* a rotation was journaled (Key Vault throttled or down,
        a refused binding), so the host redelivers transient failures and the caller can
        report permanent ones. Once a rotation is journaled, a transient failure is the
        rotation's own (released with its back-off; the next sweep queues its resumption),
        so the message is done: redelivering it could only start nothing.
        """
        if item.kind == "resume":
            try:
                return self.resume(item.rotation_id or "")
            except (LeaseHeld, NotYetDue):
                return None  # another worker has it, or it is not due yet: both settle it
            except TransientError:
                return self._journal.get(item.rotation_id or "")
        vault, secret = VaultName(item.vault), SecretName(item.secret)
        current = self._vaults(vault).latest(secret)
        bound = self._preflight(current)
        trigger = RotationTrigger("sweeper", reference)
        opened = self._journal.begin(self._leased_record(vault, secret, current, bound, trigger),
                                     now=self._clock())
        if not isinstance(opened, Begun):
            return None  # this version is rotated (or being rotated) already
        try:
            return self._run_begun(opened.record, current)
        except TransientError:
            return self._journal.get(opened.record.rotation_id)

    def poisoned_by_throttling(self, item: WorkItem) -> bool:
        """Did the host give up on this work because Key Vault throttled every delivery? Then
        it is no failed rotation (throttling is the vault's load, docs/protocol.md): nothing
        is recorded, and the sweeper queues the work again once its queued mark has expired."""
        reason = self._journal.queue_failure(item.vault, item.secret, item.key)
        return reason is not None and reason.startswith(f"{Throttled.__name__}:")

    def record_poisoned(self, item: WorkItem, reference: str, deliveries: int) -> RotationRecord | None:
        """Queued work the host gave up on: a failed rotation with the reason, where history
        and status show it. A resumption's rotation already carries its own error."""
        if item.kind != "rotate":
            return None
        reason = self._journal.queue_failure(item.vault, item.secret, item.key) or \
            "no failure was recorded (see the logs of the queue function)"
        versions = self._vaults(VaultName(item.vault)).versions(item.secret)
        if not versions:
            return None
        record = self._new_record(VaultName(item.vault), SecretName(item.secret),
                                  versions[-1].version, RotationTrigger("sweeper", reference))
        opened = self._journal.begin(record, now=self._clock())
        if not isinstance(opened, Begun):
            return None  # a rotation of that version exists: it is the history
        return self._journal.close(
            opened.record, now=self._clock(), status="failed",
            last_error=f"the work queue gave up after {deliveries} deliveries: {reason}")

    def _preflight(self, current: SecretVersion) -> BoundSecret:
        """Check tags, the operator's allowlists and the value before the journal opens
        anything, so a refused or malformed secret leaves no trace but a log line."""
        if not current.enabled:
            raise SecretNotRotatable("the current version is disabled")
        binding = read_binding(current.tags, default_validity_days=self._settings.validity_days,
                               default_grace_hours=self._settings.protocol.grace_hours)
        too_short = self._settings.validity_problem(binding.validity_days,
                                                    "tag rotator-validity-days")
        if too_short:
            raise SecretNotRotatable(too_short)
        return self._settings.targets.bind(current.vault, current.name, binding,
                                           value=current.value, content_type=current.content_type)

    def vault_secrets(self, vault: str) -> KeyVaultSecrets:
        return self._vaults(VaultName(vault))

    def resume(self, rotation_id: str) -> RotationRecord:
        """Take the lease of an unfinished rotation and carry it on."""
        record = self._journal.claim(rotation_id, owner=self.worker_id, now=self._clock(),
                                     ttl=self._engine.lease)
        return self._engine.run(record)

    def _run_begun(self, record: RotationRecord, current: SecretVersion) -> RotationRecord:
        """Run the first attempt of a rotation this call began, leased to this worker.

        Nobody else can have worked on it: its id is new and its lease is ours from the
        start. A record that is somehow not (a begin answered with something else) is
        claimed like any other.
        """
        if (record.lease_owner != self.worker_id or record.attempts != 1
                or record.step != "started"):
            return self.resume(record.rotation_id)
        return self._engine.run(record, opening=Opening(latest=current))

    def _leased_record(self, vault: VaultName, secret: SecretName, current: SecretVersion,
                       bound: BoundSecret, trigger: RotationTrigger) -> RotationRecord:
        """A new rotation of ``current``, begun with this worker's lease and first attempt,
        and the target its preflight bound it to (the journal's claim, in the begin write)."""
        record = self._new_record(vault, secret, current.version, trigger)
        return record.with_changes(attempts=1, lease_owner=self.worker_id,
                                   lease_until=record.created_at + self._engine.lease,
                                   target_id=bound.target.target_id)

    def _new_record(self, vault: VaultName, secret: SecretName, version: VersionId,
                    trigger: RotationTrigger) -> RotationRecord:
        now = self._clock()
        return RotationRecord(
            rotation_id=RotationId(self._new_rotation_id()), vault=vault, secret=secret,
            from_version=version, trigger_source=trigger.source,
            trigger_reference=trigger.reference, trigger_event_type=trigger.event_type,
            created_at=now, updated_at=now,
        )


def _decision(record: RotationRecord, *, resumed: bool = False) -> Decision:
    if record.status in ("awaiting-propagation", "awaiting-retirement", "cleanup-pending",
                         "needs-repair", "superseded"):
        return record.status
    return "resumed" if resumed else "rotated"

