"""The rotation journal's record: one per rotation, never holding a secret value.

A rotation moves through these steps; ``step`` names the last one *completed*::

    started ─► prepared ─► applied ─► verified ─► promoted ─► propagated ─► retired ─► finished
                  │                                                   (ExternalSecrets
                  │ pending credential stored in Key Vault             annotated)
                  ▼ before the target is touched

A ``propagation`` record (``purpose``) carries a version someone wrote by hand into the
clusters: it begins at ``promoted`` and runs only ``propagated`` and ``finished``.

``status`` says where the rotation stands as a whole:

- ``running``: a worker is on it, or it waits (``next_attempt_at``) for the next attempt;
- ``awaiting-propagation``: the ExternalSecrets that read the secret were annotated (or the
  cluster could not be reached yet); the sweeper comes back to confirm that ESO synced and
  the workloads rolled out, and retirement waits for that, at most the maximum grace;
- ``awaiting-retirement``: promoted; the previous credential stays valid until
  ``retire_after``, then the sweeper retires it;
- ``cleanup-pending``: promoted, so the rotation has taken effect, but disabling the pending
  version or retiring the previous credential keeps failing; the sweeper retries it with
  back-off until done. Never turns into a failure;
- ``needs-repair``: the rotation gave up before promote and could prove neither that the
  current Key Vault version logs in nor that it put the previous credential back (the target
  or Key Vault unreachable, the secret deleted); the sweeper keeps trying with back-off;
- ``succeeded``: finished;
- ``failed``: nothing changed, or the change was rolled back and the current Key Vault version
  verified (``last_error`` says which, and why);
- ``superseded``: a version written outside this rotation became current before promote; the
  rotation stopped without touching it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Literal

from rotation.ids import RotationId, SecretName, VaultName, VersionId
from rotation.propagation.progress import Propagation, public, summary

Step = Literal[
    "started", "prepared", "applied", "verified", "promoted", "propagated", "retired", "finished"
]
STEPS: tuple[Step, ...] = (
    "started", "prepared", "applied", "verified", "promoted", "propagated", "retired", "finished"
)
Status = Literal["running", "awaiting-propagation", "awaiting-retirement", "cleanup-pending",
                 "needs-repair", "succeeded", "failed", "superseded"]
UNFINISHED: frozenset[Status] = frozenset({"running", "awaiting-propagation",
                                           "awaiting-retirement", "cleanup-pending",
                                           "needs-repair"})
#: ``rotation``: a new credential; ``propagation``: a hand-written version carried into the
#: clusters, nothing rotated.
Purpose = Literal["rotation", "propagation"]
ClosedStatus = Literal["succeeded", "failed", "superseded"]
TriggerSource = Literal["event", "http", "sweeper", "cli"]
#: "proven": the secret's current credential logged in before anything changed; "recovery":
#: it did not, and the operator's target allows an admin to recover the login.
Ownership = Literal["proven", "recovery"]


@dataclass(frozen=True, slots=True)
class StepTiming:
    """When a step completed, how long it took, and in which attempt."""

    step: Step
    completed_at: datetime
    duration_ms: float
    attempt: int


@dataclass(frozen=True, slots=True)
class RotationRecord:
    """Everything durable about one rotation. Values never; only names and version ids."""

    rotation_id: RotationId
    vault: VaultName
    secret: SecretName
    from_version: VersionId                 # the version being rotated (idempotency key part)
    trigger_source: TriggerSource
    trigger_reference: str                  # event id, HTTP caller, "sweeper"
    trigger_event_type: str | None
    created_at: datetime
    updated_at: datetime
    status: Status = "running"
    step: Step = "started"
    attempts: int = 0                       # worker attempts so far (each claim counts one)
    last_error: str | None = None           # type and message of the last failure, no values
    next_attempt_at: datetime | None = None  # earliest time a new attempt may start
    lease_owner: str | None = None
    lease_until: datetime | None = None
    pending_secret: str | None = None       # Key Vault secret holding the pending credential
    pending_version: VersionId | None = None
    new_version: VersionId | None = None    # the promoted version
    new_expiry: datetime | None = None
    previous_username: str | None = None    # whose credential retirement ends
    retire_after: datetime | None = None
    finished_at: datetime | None = None
    steps: tuple[StepTiming, ...] = ()
    trace_parent: str | None = None         # W3C traceparent of the first attempt's root span
    target_id: str | None = None            # the operator's target the secret bound to
    ownership: Ownership | None = None      # how the current credential was proven at prepare
    minting: str | None = None              # name of a credential asked of the server (tokens)
    leftovers: str | None = None            # credentials a crash left on the server, described
    purpose: Purpose = "rotation"
    propagation: Propagation | None = None  # per-consumer progress in the clusters
    published: str | None = None            # rotation events sent, comma-separated kinds
    etag: str | None = field(default=None, compare=False)  # set by the journal; opaque

    def with_changes(self, **changes: object) -> RotationRecord:
        """A copy with ``changes``; the journal decides whether it may be saved."""
        return replace(self, **changes)  # type: ignore[arg-type]

    @property
    def finished(self) -> bool:
        return self.status not in UNFINISHED

    def done(self, step: Step) -> bool:
        """True when ``step`` is already completed (so a resumed worker skips it)."""
        return STEPS.index(self.step) >= STEPS.index(step)


def public_view(record: RotationRecord, *, brief: bool = False) -> dict[str, object]:
    """The record as operators see it over HTTP and in the CLI: ids, steps, timings, no values.

    ``brief`` (a list of rotations) gives the propagation's counts instead of every consumer.
    """

    def iso(moment: datetime | None) -> str | None:
        return moment.isoformat(timespec="seconds") if moment else None

    end = record.finished_at or (record.steps[-1].completed_at if record.steps else None)
    return {
        "rotationId": record.rotation_id,
        "vault": record.vault,
        "secret": record.secret,
        "status": record.status,
        "step": record.step,
        "oldVersion": record.from_version,
        "newVersion": record.new_version,
        "newExpiry": iso(record.new_expiry),
        "pendingSecret": record.pending_secret,
        "pendingVersion": record.pending_version,
        "attempts": record.attempts,
        "lastError": record.last_error,
        "nextAttemptAt": iso(record.next_attempt_at),
        "retireAfter": iso(record.retire_after),
        "target": record.target_id,
        "ownership": record.ownership,
        "leftovers": record.leftovers,
        "purpose": record.purpose,
        "propagation": ((summary if brief else public)(record.propagation)
                        if record.propagation else None),
        "eventsPublished": record.published.split(",") if record.published else [],
        "trigger": {"source": record.trigger_source, "reference": record.trigger_reference,
                    "eventType": record.trigger_event_type},
        "startedAt": iso(record.created_at),
        "finishedAt": iso(record.finished_at),
        "durationSeconds": round((end - record.created_at).total_seconds(), 3) if end else None,
        "steps": [{"step": t.step, "completedAt": iso(t.completed_at),
                   "durationMs": t.duration_ms, "attempt": t.attempt} for t in record.steps],
    }
