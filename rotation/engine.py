"""The rotation protocol: run a claimed rotation through its remaining steps, crash-safely.

::

    prepare ─► apply ─► verify ─► promote ─► propagate ─► retire ─► finish
    (pending     (target   (fresh    (new current  (ESO objects  (previous     (pending
     credential   changes)  login)    version,      that read it  credential    disabled,
     in Key Vault)                    tags, exp)    annotated)    ends, once    journal
                                                                  confirmed)    closed)

**Propagation.** With clusters configured, ``propagate`` annotates the ExternalSecrets that
read the secret (:mod:`rotation.propagation.propagator`); retirement then waits, without
holding an invocation, until every consumer confirmed (ESO synced, Reloader's rollouts done)
or the maximum grace ran out (``awaiting-propagation``; the sweeper comes back). Without
tracked consumers the previous credential is retired after its grace, as before.

**The invariant.** At every instant either the secret's current Key Vault version
authenticates against the target, or the journal names the pending version that does, and a
rotation whose end state is not verified stays open. The new credential is written to Key
Vault (``prepare``) before the target is touched, so it is never known only to a process that
can die. Each step is journaled when it completes (a conditional write that also renews the
worker's lease), and each step is safe to repeat: a worker that resumes a dead worker's
rotation re-runs at most the step that was under way, with the same pending credential. A
step that changed nothing (verify only reads; propagate without clusters; retire where apply
already ended the previous credential), and finish, which the close follows at once, are
journaled with the next write instead of one of their own: a worker that dies before it
repeats them, which changes nothing. A failing attempt writes them before it lets go.

**Cost.** Each attempt reads what it works with once. The first attempt of a rotation the
service has just begun takes the version being rotated from the service's own read
(:class:`~rotation.attempt.Opening`), and does not look for a pending credential nothing can
have stored yet. docs/protocol.md ("What one rotation costs") counts the calls.

**Time.** Every client call is bounded (Key Vault and target timeouts, checked against the
lease when settings are read); before each step the lease is renewed if what is left of it
could not cover the step, and retries inside a step stop before the lease would run out.

**Failures.** Before promote, a transient error ends this attempt: the lease is released with
a back-off and the error propagates, so Event Grid redelivers or the sweeper resumes. After
``max_attempts`` attempts, or at once on a permanent error, :class:`~rotation.recovery.Recovery`
settles the rotation from what Key Vault and the target say now (roll forward, superseded,
rolled back and verified, or ``needs-repair``). After promote the rotation has taken effect:
any failure leaves it ``cleanup-pending`` for the sweeper, never ``failed``.

A :class:`StepObserver` sees every step boundary; telemetry is one, and the fault-injection
tests are another (they raise, or kill the process, at a chosen boundary).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from opentelemetry.trace import Span

from rotation import telemetry
from rotation.attempt import NoObserver, Opening, Progress, StepObserver
from rotation.binding import (
    JSON_CONTENT_TYPE,
    TAG_ROTATION_ID,
    encode_credential,
    read_binding,
    read_credential,
    tags_for_new_version,
)
from rotation.catalogue import BoundSecret
from rotation.consumer_gate import ConsumerGate
from rotation.context import RotationContext
from rotation.dr import wants_dr
from rotation.errors import (
    AccessDenied,
    ConcurrentRotation,
    PermanentError,
    RotatorError,
    SecretNotFound,
    SecretNotRotatable,
    Throttled,
    TransientError,
)
from rotation.journal.base import Journal
from rotation.journal.model import RotationRecord, Step, StepTiming
from rotation.keyvault import KeyVaultSecrets, SecretVersion
from rotation.passwords import generate_password
from rotation.pending import (
    clear_pending,
    find_pending,
    pending_name,
    read_pending,
    store_pending,
)
from rotation.propagation.propagator import Propagator
from rotation.recovery import Recovery
from rotation.retry import call_with_retry, deadline
from rotation.secret_value import Credential
from rotation.settings import LEASE_PER_TIMEOUT, Settings
from rotation.targets.base import MintingTarget, Target, TargetContext
from rotation.targets.definition import SecretRef

if TYPE_CHECKING:  # azure-eventgrid loads only where events are configured
    from rotation.publishing import EventKind, Publisher

logger = logging.getLogger(__name__)
#: How long throttling may hold a rotation back without costing it attempts: Event Grid's
#: default retry window (24 hours; the subscription's event_time_to_live), after which the
#: event is gone and only the sweeper would come back.
THROTTLE_PATIENCE = timedelta(hours=24)
#: A throttled rotation is due again after this (x0.5-1.5 jitter: at most 7.5 s), before Event
#: Grid's first redelivery (10 s) finds it; see RotationEngine._after_throttle.
THROTTLE_BACKOFF_SECONDS = 5.0
Clock = Callable[[], datetime]
TargetFactory = Callable[[TargetContext], Target]
Changes = dict[str, object]  # what a step's effect asks the journal to record


class RotationEngine:
    """Runs claimed rotations; the journal decides who may advance them."""

    def __init__(
        self, *, settings: Settings, journal: Journal, vaults: Callable[[str], KeyVaultSecrets],
        targets: TargetFactory, clock: Clock, observer: StepObserver | None = None,
        propagator: Propagator | None = None, publisher: Publisher | None = None,
    ) -> None:
        self._settings = settings
        self._protocol = settings.protocol
        self._journal = journal
        self._vaults = vaults
        self._targets = targets
        self._clock = clock
        self._observer = observer or NoObserver()
        self._publisher = publisher
        self._gate = (ConsumerGate(propagator=propagator, settings=settings, journal=journal,
                                   clock=clock, lease=self.lease, observer=self._observer)
                      if propagator is not None else None)
        self._recovery = Recovery(journal=journal, vaults=vaults, context=self._context,
                                  clock=clock, protocol=settings.protocol)

    @property
    def lease(self) -> timedelta:
        return timedelta(seconds=self._protocol.lease_seconds)

    def run(self, record: RotationRecord, *, opening: Opening | None = None) -> RotationRecord:
        """Advance a rotation whose lease this worker holds, as far as it can go now.

        ``opening``: what the caller that has just begun this rotation, leased to this worker,
        already read (its first attempt only)."""
        with telemetry.rotation_context(
            rotation_id=record.rotation_id, vault=record.vault, secret=record.secret,
            trigger=record.trigger_source,
        ), telemetry.step("rotate", parent=telemetry.resumed_context(record.trace_parent),
                          attempt=str(record.attempts), resumed_from=record.step) as span:
            # Failures are recorded against this worker's own latest record, so that a worker
            # that lost its lease gets LeaseLost instead of touching the new owner's rotation.
            progress = Progress(record)
            self._remember_trace(progress, span)
            record = progress.record
            try:
                if record.status == "needs-repair":
                    # The first clause of lastError is the original cause; what settle adds
                    # after it is rewritten each time, so it never piles up.
                    cause = (record.last_error or "").split("; ", 1)[0] or "repair"
                    return self._settled(self._recovery.settle(record, cause))
                if record.purpose == "propagation":
                    return self._propagation_only(progress)
                context = self._context(record, opening=opening)
                if record.target_id is None:  # known before any step, for failures' metrics
                    progress.changes["target_id"] = context.definition.target_id
                return self._steps(progress, context)
            except ConcurrentRotation:
                raise  # another worker owns it now: touch nothing more
            except TransientError as exc:
                exc.rotation_id = record.rotation_id
                self._journal_unwritten(progress)
                return self._after_transient(progress.record, exc)
            except PermanentError as exc:
                exc.rotation_id = record.rotation_id
                self._journal_unwritten(progress)
                return self._after_permanent(progress.record, exc)
            except RotatorError:
                self._journal_unwritten(progress)
                raise
            except Exception as exc:
                # A bug or an unexpected library error: treat it like a transient failure, so
                # the rotation is resumed (and bounded by max_attempts) rather than stuck.
                logger.exception("unexpected error in a rotation step")
                wrapped = TransientError(f"unexpected {type(exc).__name__} in a rotation step")
                wrapped.rotation_id = record.rotation_id
                self._journal_unwritten(progress)
                return self._after_transient(progress.record, wrapped, cause=exc)

    def _remember_trace(self, progress: Progress, span: Span) -> None:
        """Journal the first attempt's trace, so later attempts join it: with the attempt's
        first write where the steps run, at once where other paths write the record."""
        record = progress.record
        if record.trace_parent is not None:
            return
        trace_parent = telemetry.trace_parent_of(span)
        if trace_parent is None:
            return  # nothing is being traced
        if record.status == "needs-repair" or record.purpose == "propagation":
            progress.record = self._journal.advance(record, now=self._clock(), ttl=self.lease,
                                                    trace_parent=trace_parent)
        else:
            progress.changes["trace_parent"] = trace_parent

    # -- the steps ---------------------------------------------------------------------

    def _steps(self, progress: Progress, ctx: RotationContext) -> RotationRecord:
        """Run every step not yet journaled, in order; each returns its journal changes."""
        effects: tuple[tuple[Step, Callable[[RotationRecord, RotationContext], Changes]], ...] = (
            ("prepared", lambda record, ctx: self._prepare(progress, ctx)),
            ("applied", self._apply),
            ("verified", self._verify),
            ("promoted", self._promote),
            ("propagated", lambda record, ctx: self._propagate(progress, ctx.new_tags)),
            ("retired", self._retire),
            ("finished", self._finish),
        )
        for step, effect in effects:
            record = progress.record
            if record.done(step):
                continue
            if step == "retired":
                if progress.unjournaled and self._gate is not None:
                    self._write_unjournaled(progress)  # the gate writes the record itself
                waiting = self._await_consumers(progress, tags=ctx.new_tags,
                                                retires=ctx.target.retires_previous,
                                                wait_hours=self._wait_for(ctx))
                if waiting is not None:
                    return waiting
                record = progress.record
                if record.retire_after and self._clock() < record.retire_after:
                    return self._await_retirement(progress)
            record = self._renew_lease_for_a_step(progress)
            with self._step(step, record):
                changes = effect(record, ctx)
                self._observer.after_effect(step, record)
                if self._journaled_later(step, record, ctx, changes):
                    progress.unjournaled.append(self._timing(progress, step))
                else:
                    self._advance(progress, step, **changes)
            if step == "retired" and ctx.target.retires_previous:
                self._announce(progress, "retired")
        self._announce(progress, "succeeded")
        unjournaled = self._take_unjournaled(progress)
        record = self._journal.close(progress.record, now=self._clock(), status="succeeded",
                                     last_error=None, step=unjournaled.step,
                                     steps=unjournaled.history, **unjournaled.changes)
        self._after_journal(unjournaled.steps, record)
        record = self._settled(record)
        logger.info("rotation finished", extra={"outcome": "succeeded",
                                                "new_version": record.new_version})
        return record

    def _journaled_later(self, step: Step, record: RotationRecord, ctx: RotationContext,
                         changes: Changes) -> bool:
        """True for a step whose completion the next journal write can carry: one whose
        effect changed nothing, so that a worker dying before that write repeats it to no
        effect (verify only reads; propagate without clusters; retire where apply already
        ended the previous credential), and finish, which the close follows at once (it
        disables the pending version, which is harmless to do twice)."""
        if step in ("verified", "finished"):
            return not changes
        if step == "propagated":
            return self._gate is None and not changes
        if step == "retired":
            return not ctx.target.retires_previous and changes == {"status": record.status}
        return False

    def _renew_lease_for_a_step(self, progress: Progress) -> RotationRecord:
        """Start a step only with enough lease left to finish it; renew the lease if not."""
        record = progress.record
        worst_case = timedelta(seconds=LEASE_PER_TIMEOUT * self._settings.call_timeout_seconds)
        if record.lease_until is None or record.lease_until - self._clock() < worst_case:
            progress.record = self._journal.advance(record, now=self._clock(), ttl=self.lease)
        return progress.record

    def _prepare(self, progress: Progress, ctx: RotationContext) -> Changes:
        """Store the new credential in Key Vault before anything else changes."""
        record = progress.record
        if not ctx.rotated_is_latest:
            latest = ctx.kv.latest(record.secret)
            if latest.version != record.from_version:
                raise SecretNotRotatable(
                    f"secret moved to version {latest.version} before the rotation of "
                    f"{record.from_version} could prepare"
                )
        ownership = self._prove_ownership(ctx)
        self._check_parity(ctx)
        # Only an earlier attempt can have stored one; the first attempt has none before it.
        earlier = None if ctx.first_attempt else find_pending(ctx.kv, record.secret,
                                                              record.rotation_id)
        expires = self._clock() + timedelta(days=ctx.binding.validity_days)
        if earlier is not None:
            # Stored by an attempt that died before journaling it: the same credential.
            version, ctx.pending = earlier
        else:
            if isinstance(ctx.target, MintingTarget):
                ctx.pending = self._mint(progress, ctx, ctx.target, expires)
            else:
                policy = ctx.definition.password.with_overrides(ctx.binding.password_preset,
                                                                ctx.binding.password_length)
                ctx.pending = Credential(ctx.target.next_username(ctx.previous),
                                         generate_password(policy))
            version = store_pending(ctx.kv, record.secret, ctx.pending,
                                    rotation_id=record.rotation_id, expires_on=expires)
        return {"pending_secret": pending_name(record.secret), "pending_version": version,
                "previous_username": ctx.previous.username, "ownership": ownership,
                "target_id": ctx.definition.target_id}

    def _mint(self, progress: Progress, ctx: RotationContext, target: MintingTarget,
              expires: datetime) -> Credential:
        """Have the server create the new credential; journal the intent first.

        An earlier attempt that journaled the same intent but stored nothing may have left a
        credential on the server that nobody knows: the target sweeps it first, and what it
        cannot remove is recorded for the history.
        """
        record = progress.record
        name = f"akv-rotator {record.rotation_id}"
        if record.minting == name:
            left = target.sweep_strays(ctx.previous, name)
            if left:
                logger.warning("an earlier attempt minted a credential it never stored",
                               extra={"outcome": "stray-credential", "leftovers": left})
                progress.record = self._journal.advance(
                    record, now=self._clock(), ttl=self.lease,
                    leftovers="; ".join(sorted({*(record.leftovers or "").split("; "), *left}
                                               - {""})))
        else:
            progress.record = self._journal.advance(record, now=self._clock(), ttl=self.lease,
                                                    minting=name)
        minted = target.mint(ctx.previous, name, expires)
        self._observer.inside("prepared", "minted", progress.record)
        return minted

    def _prove_ownership(self, ctx: RotationContext) -> str:
        """The secret's current credential must log in before anything changes the login.

        Otherwise anyone who can write a secret could have an admin login reset someone
        else's password into it. Only where the operator's target allows lost-password
        recovery (and names an admin) may the rotator go on, and the rotation records it.
        """
        if ctx.target.accepts(ctx.previous):
            return "proven"
        login, target_id = ctx.previous.username, ctx.definition.target_id
        if ctx.definition.allow_password_recovery and ctx.admin is not None:
            logger.warning("current credential does not log in: recovering the login with the "
                           "admin login, as the operator's target allows",
                           extra={"outcome": "password-recovery", "login": login,
                                  "target": target_id})
            return "recovery"
        raise AccessDenied(
            f"the secret's current credential does not log in as {login!r} on target "
            f"{target_id!r}: akv-rotator only changes a login whose current credential it can "
            "prove. Store the working password as a new version, or have the operator allow "
            "password recovery on the target")

    def _check_parity(self, ctx: RotationContext) -> None:
        """Refuse to switch an application to a login that can do more or less than its
        current one (alternating logins drift apart); the operator may make it a warning."""
        differences = ctx.target.parity_differences(ctx.previous)
        if not differences:
            return
        if ctx.definition.privilege_parity == "warn":
            logger.warning("privilege parity differs; going on as the operator's target allows",
                           extra={"outcome": "parity-warning", "differences": differences})
            return
        raise SecretNotRotatable(
            "privilege parity: " + "; ".join(differences) + ". Make the logins match (or "
            "have the operator set privilegeParity to warn on the target)")

    def _apply(self, record: RotationRecord, ctx: RotationContext) -> Changes:
        pending = self._pending(record, ctx)
        self._retrying(lambda: ctx.target.apply(ctx.previous, pending), "apply")
        return {}

    def _verify(self, record: RotationRecord, ctx: RotationContext) -> Changes:
        pending = self._pending(record, ctx)
        self._retrying(lambda: ctx.target.verify(pending), "verify")
        return {}

    def _promote(self, record: RotationRecord, ctx: RotationContext) -> Changes:
        """Write the new current version, unless an earlier attempt already did."""
        latest = ctx.kv.latest(record.secret)
        if latest.tags.get(TAG_ROTATION_ID) == record.rotation_id:
            promoted = latest  # written by an earlier attempt that died before journaling it
        elif latest.version != record.from_version:
            raise SecretNotRotatable(
                f"secret moved to version {latest.version} (written outside this rotation) "
                "before promote"
            )
        else:
            promoted = ctx.kv.set_version(
                record.secret, encode_credential(self._pending(record, ctx)),
                content_type=JSON_CONTENT_TYPE, tags=ctx.new_tags,
                expires_on=self._clock() + timedelta(days=ctx.binding.validity_days),
                marker=TAG_ROTATION_ID,  # a retry adopts the version a lost response hid
            )
        if wants_dr(ctx.new_tags):
            telemetry.count_dr_stale(vault=record.vault)
            logger.warning("DR file stale", extra={
                "outcome": "dr-stale", "new_version": promoted.version,
                "detail": "a rotator-dr secret has a new version: export the DR file again "
                          "(akv-rotator dr export)"})
        retire_after = None
        if ctx.target.retires_previous:
            retire_after = self._clock() + timedelta(hours=ctx.binding.grace_hours)
        return {"new_version": promoted.version, "new_expiry": promoted.expires_on,
                "retire_after": retire_after}

    def _propagate(self, progress: Progress, tags: dict[str, str]) -> Changes:
        """Annotate the ESO objects that read the secret (:class:`ConsumerGate`)."""
        if self._gate is None:
            return {}
        return self._gate.propagate(progress, tags)

    def _await_consumers(self, progress: Progress, *, tags: dict[str, str], retires: bool,
                         wait_hours: float) -> RotationRecord | None:
        """Hold retirement for the consumers (:meth:`ConsumerGate.hold`); None to go on."""
        if self._gate is None:
            return None
        return self._gate.hold(progress, tags=tags, retires=retires, wait_hours=wait_hours,
                               renew=self._renew_lease_for_a_step,
                               announce=lambda: self._announce(progress, "propagated"))

    def _announce(self, progress: Progress, kind: EventKind) -> None:
        """Publish a rotation event once: journaled after it was accepted, so a resumed
        attempt skips it (a crash between the two sends it again, with the same id)."""
        record = progress.record
        done = set((record.published or "").split(",")) - {""}
        if self._publisher is None or kind in done:
            return
        about = record  # as the next write records it: a succeeded event tells the close's outcome
        if progress.unjournaled:
            about = record.with_changes(step=progress.unjournaled[-1].step,
                                        steps=(*record.steps, *progress.unjournaled))
        if kind == "succeeded":
            about = about.with_changes(status="succeeded", finished_at=self._clock())
        if self._publisher.publish(kind, about):
            progress.record = self._journal.advance(record, now=self._clock(), ttl=self.lease,
                                                    published=",".join(sorted(done | {kind})))

    def _settled(self, record: RotationRecord) -> RotationRecord:
        """After a rotation closed (or was parked): its metrics, and a failure's announcement
        (a failed rotation is never resumed: announced once, unjournaled)."""
        if record.finished:
            target = self._settings.targets.targets.get(record.target_id or "")
            kind = target.kind if target is not None else "unknown"
            seconds = ((record.finished_at or self._clock()) - record.created_at).total_seconds()
            telemetry.record_closed(outcome=record.status, target_kind=kind,
                                    duration_seconds=seconds, attempts=record.attempts)
            logger.info("rotation closed", extra={
                "outcome": record.status, "target_kind": kind, "purpose": record.purpose,
                "duration_seconds": round(seconds, 3), "attempts": record.attempts,
                "last_error": record.last_error})
        if self._publisher is not None and record.status == "failed":
            self._publisher.publish("failed", record)
        return record

    def _wait_for(self, ctx: RotationContext) -> float:
        """The longest wait for consumers: the maximum grace where a credential waits to be
        retired, the watch window where nothing does."""
        wait = ctx.binding.propagation_wait_hours
        return wait if ctx.target.retires_previous else min(wait, self._watch_hours)

    @property
    def _watch_hours(self) -> float:
        """How long consumers are confirmed when nothing waits for them (no retirement)."""
        return self._settings.propagation.watch_minutes / 60

    def _propagation_only(self, progress: Progress) -> RotationRecord:
        """A version written by hand: annotate its consumers, confirm them for a while, close.

        Nothing is rotated or retired; a version that is gone or not current any more closes
        the record as superseded (the newer version's own event carries it)."""
        record = progress.record
        kv = self._vaults(record.vault)
        if record.done("propagated"):
            tags = dict(kv.version(record.secret, record.from_version).tags)
        else:
            try:
                latest = kv.latest(record.secret)
            except SecretNotFound:
                latest = None
            if latest is None or latest.version != record.from_version:
                return self._settled(self._journal.close(
                    record, now=self._clock(), status="superseded",
                    last_error="the version is no longer the current one"))
            tags = dict(latest.tags)
            record = self._renew_lease_for_a_step(progress)
            with self._step("propagated", record):
                changes = self._propagate(progress, tags)
                self._observer.after_effect("propagated", progress.record)
                self._advance(progress, "propagated", **changes)
        waiting = self._await_consumers(progress, tags=tags, retires=False,
                                        wait_hours=self._watch_hours)
        if waiting is not None:
            return waiting
        record = self._renew_lease_for_a_step(progress)
        with self._step("finished", record):
            self._advance(progress, "finished")
        record = self._settled(self._journal.close(progress.record, now=self._clock(),
                                                   status="succeeded"))
        logger.info("propagation finished", extra={"outcome": "succeeded"})
        return record

    def _retire(self, record: RotationRecord, ctx: RotationContext) -> Changes:
        """End the previous credential, unless a newer version someone wrote uses it."""
        if ctx.target.retires_previous:
            current = self._pending(record, ctx)
            if ctx.previous != current and not self._in_use(record, ctx, current):
                self._retrying(lambda: ctx.target.retire(ctx.previous, current), "retire")
        waited = record.status in ("awaiting-retirement", "awaiting-propagation")
        return {"status": "running" if waited else record.status}

    def _in_use(self, record: RotationRecord, ctx: RotationContext, current: Credential) -> bool:
        """True when Key Vault's current version is not this rotation's and holds the
        previous credential: retiring it would break a version someone else wrote.

        Where the rotation switched logins, holding the previous login is enough (its
        password may have been reset by hand); where it kept the login (tokens, dual
        passwords), it is the previous secret itself that must not be ended."""
        latest = ctx.kv.latest(record.secret)
        if latest.tags.get(TAG_ROTATION_ID) == record.rotation_id:
            return False
        holder = read_credential(latest.value, latest.content_type, None)
        switched = ctx.previous.username != current.username
        if holder.username == ctx.previous.username and (switched
                                                        or holder.password == ctx.previous.password):
            logger.warning("previous login kept: a newer version written outside this rotation "
                           "uses it", extra={"outcome": "retire-skipped",
                                             "current_version": latest.version})
            return True
        return False

    def _finish(self, record: RotationRecord, ctx: RotationContext) -> Changes:
        clear_pending(ctx.kv, record.secret, record.pending_version or "")
        return {}

    def _pending(self, record: RotationRecord, ctx: RotationContext) -> Credential:
        """The pending credential, read back from Key Vault once per attempt when needed."""
        if ctx.pending is None:
            ctx.pending = read_pending(ctx.kv, record.secret, record.pending_version or "")
        return ctx.pending

    # -- the context of an attempt ---------------------------------------------------------

    def _context(self, record: RotationRecord, *, opening: Opening | None = None) -> RotationContext:
        kv = self._vaults(record.vault)
        catalogue = self._settings.targets
        with telemetry.step("read"):
            rotated, is_latest = self._rotated_version(kv, record, opening)
            binding = read_binding(rotated.tags, default_validity_days=self._settings.validity_days,
                                   default_grace_hours=self._protocol.grace_hours)
            too_short = self._settings.validity_problem(binding.validity_days,
                                                        "tag rotator-validity-days")
            if too_short:
                raise SecretNotRotatable(too_short)
            # Tags of a version can be edited, so the operator's allowlists are checked again
            # on every attempt, not only when the rotation was opened.
            bound: BoundSecret = catalogue.bind(record.vault, record.secret, binding,
                                                value=rotated.value,
                                                content_type=rotated.content_type)
            # Checked here, so a secret whose tags cannot be carried forward is refused
            # before anything changes rather than at promote.
            new_tags = tags_for_new_version(rotated.tags, rotation_id=record.rotation_id,
                                            rotated_at=record.created_at)
            admin = self._admin(bound.target.admin_secret)
        target = self._targets(TargetContext(bound.target, bound.strategy, admin,
                                             self._settings.connect_timeout_seconds))
        for login in (bound.credential.username, target.next_username(bound.credential)):
            catalogue.check_login(bound.target, login, vault=record.vault, secret=record.secret,
                                  admin=admin)
        return RotationContext(kv=kv, binding=binding, definition=bound.target,
                               previous=bound.credential, admin=admin, target=target,
                               new_tags=new_tags, rotated_is_latest=is_latest,
                               first_attempt=opening is not None)

    @staticmethod
    def _rotated_version(kv: KeyVaultSecrets, record: RotationRecord,
                         opening: Opening | None) -> tuple[SecretVersion, bool]:
        """The version being rotated, and whether it was read as the secret's latest.

        A first attempt has it from the read that began the rotation. Before prepare the
        latest version is read, since prepare needs to know the secret has not moved on, and
        it is usually the one being rotated; only when it is not, or after prepare, is the
        version read by its id."""
        if opening is not None and opening.latest.version == record.from_version:
            return opening.latest, True
        if not record.done("prepared"):
            latest = kv.latest(record.secret)
            if latest.version == record.from_version:
                return latest, True
        return kv.version(record.secret, record.from_version), False

    def _admin(self, ref: SecretRef | None) -> Credential | None:
        """The admin login the operator's target names, from its pinned vault."""
        if ref is None:
            return None
        try:
            stored = self._vaults(ref.vault).latest(ref.name)
        except SecretNotFound as exc:
            raise SecretNotRotatable(f"the target's admin secret {ref} does not exist") from exc
        return read_credential(stored.value, stored.content_type, None)

    # -- journal and failure handling ----------------------------------------------------

    @contextmanager
    def _step(self, step: Step, record: RotationRecord) -> Iterator[None]:
        """A step's span and log line; its retries end before the worker's lease does."""
        self._observer.before(step, record)
        left = (record.lease_until - self._clock()).total_seconds() if record.lease_until else 0.0
        with telemetry.step(_STEP_NAMES[step]), deadline(
                left, per_call_seconds=self._settings.call_timeout_seconds):
            yield

    def _advance(self, progress: Progress, step: Step, **changes: object) -> RotationRecord:
        """Journal ``step`` (and the steps completed before it that wait for a write)."""
        progress.unjournaled.append(self._timing(progress, step))
        return self._write_unjournaled(progress, **changes)

    def _write_unjournaled(self, progress: Progress, **changes: object) -> RotationRecord:
        """One write of ``changes`` and of everything that waits for a write."""
        unjournaled = self._take_unjournaled(progress)
        saved = self._journal.advance(progress.record, now=self._clock(), ttl=self.lease,
                                      step=unjournaled.step, steps=unjournaled.history,
                                      **{**unjournaled.changes, **changes})
        progress.record = saved
        self._after_journal(unjournaled.steps, saved)
        return saved

    def _timing(self, progress: Progress, step: Step) -> StepTiming:
        """``step`` completed now; it took since the step before it completed."""
        now = self._clock()
        started = (progress.unjournaled[-1].completed_at if progress.unjournaled
                   else progress.record.updated_at)
        return StepTiming(step=step, completed_at=now,
                          duration_ms=round((now - started).total_seconds() * 1000, 1),
                          attempt=progress.record.attempts)

    @staticmethod
    def _take_unjournaled(progress: Progress) -> _Unjournaled:
        """What waits for the next write: the steps completed since the last one, as the
        record's step and history, and the other changes noted meanwhile."""
        timings, progress.unjournaled = tuple(progress.unjournaled), []
        changes, progress.changes = progress.changes, {}
        record = progress.record
        return _Unjournaled(steps=tuple(t.step for t in timings),
                            step=timings[-1].step if timings else record.step,
                            history=(*record.steps, *timings), changes=changes)

    def _after_journal(self, steps: tuple[Step, ...], saved: RotationRecord) -> None:
        for step in steps:
            self._observer.after_journal(step, saved)

    def _journal_unwritten(self, progress: Progress) -> None:
        """A failing attempt journals what waited for a write (steps it completed, its trace,
        its target) before the failure handling reads the record; if even that fails, a
        later attempt repeats those steps, which changes nothing."""
        if not progress.unjournaled and not progress.changes:
            return
        try:
            self._write_unjournaled(progress)
        except Exception as exc:
            logger.warning("could not journal what the attempt did before it failed; a later "
                           "attempt repeats it", extra={"error": type(exc).__name__})

    def _await_retirement(self, progress: Progress) -> RotationRecord:
        record = self._write_unjournaled(progress, status="awaiting-retirement")
        logger.info("previous credential stays valid until its retirement",
                    extra={"outcome": "awaiting-retirement",
                           "retire_after": record.retire_after.isoformat()
                           if record.retire_after else None})
        return self._journal.release(record, now=self._clock(),
                                     next_attempt_at=record.retire_after, last_error=None)

    def _after_transient(self, current: RotationRecord, exc: TransientError,
                         cause: BaseException | None = None) -> RotationRecord:
        """Back off and let Event Grid or the sweeper come back; settle once attempts run out.

        After promote the rotation has taken effect: it is parked as cleanup-pending and
        this worker reports success, since redelivering the event could not help.
        """
        if current.done("promoted"):
            return self._recovery.cleanup_later(current, _describe(exc))
        if self._throttled_only(current, exc):
            self._journal.release(current, now=self._clock(),
                                  next_attempt_at=self._after_throttle(current, exc),
                                  last_error=_describe(exc), refund_attempt=True)
            logger.warning("rotation throttled; it comes back later", extra={
                "outcome": "throttled", "retry_after": exc.retry_after,
                "attempts": current.attempts - 1})
            if cause is not None:
                raise exc from cause
            raise exc
        if current.attempts >= self._protocol.max_attempts:
            settled = self._recovery.settle(
                current, f"gave up after {current.attempts} attempts (last error: {_describe(exc)})")
            self._settled(settled)
            if settled.status == "failed":
                raise PermanentError(f"gave up after {current.attempts} attempts; "
                                     f"last error: {exc}") from exc
            return settled
        self._journal.release(current, now=self._clock(),
                              next_attempt_at=self._recovery.backoff(current),
                              last_error=_describe(exc))
        if cause is not None:
            raise exc from cause
        raise exc

    def _throttled_only(self, current: RotationRecord, exc: TransientError) -> bool:
        """Throttling is the service's load, not this rotation's failure: within Event Grid's
        retry window (THROTTLE_PATIENCE since the rotation began) it costs no attempt."""
        return isinstance(exc, Throttled) and self._clock() - current.created_at < THROTTLE_PATIENCE

    def _after_throttle(self, current: RotationRecord, exc: TransientError) -> datetime:
        """Soon, not after the attempt back-off: throttling says the vault is busy now, not
        that this rotation is broken, and Event Grid redelivers a failed event after 10 s, then
        30 s, 1 min, 5 min... A rotation released for the 60 s attempt back-off makes those
        redeliveries find it not yet due, and one straggler holds a whole burst back by minutes
        (bench/burst.py measured it). So a throttled rotation is due again after
        THROTTLE_BACKOFF_SECONDS (never more than the attempt back-off) spread by 0.5-1.5x
        jitter, under Event Grid's first retry, or after the server's last ``Retry-After``
        (spread by 1-1.5x) when that is longer. Consecutive throttles are spaced by the
        redelivery schedule itself (or the queue message's visibility timeout, or the sweep).
        """
        base = min(THROTTLE_BACKOFF_SECONDS, self._protocol.attempt_backoff_seconds)
        wait = max(base * random.uniform(0.5, 1.5),  # noqa: S311 - jitter, not a secret
                   (exc.retry_after or 0.0) * random.uniform(1.0, 1.5))  # noqa: S311
        return self._clock() + timedelta(seconds=wait)

    def _after_permanent(self, current: RotationRecord, exc: PermanentError) -> RotationRecord:
        """Settle by the world; the error propagates only when the rotation closed failed."""
        if current.done("promoted"):
            return self._recovery.cleanup_later(current, _describe(exc))
        settled = self._settled(self._recovery.settle(current, _describe(exc)))
        if settled.status == "failed":
            raise exc
        return settled

    def _retrying(self, action: Callable[[], None], what: str) -> None:
        call_with_retry(action, policy=self._settings.retry, what=what)


@dataclass(frozen=True, slots=True)
class _Unjournaled:
    """What waits for the next journal write: the steps completed since the last one, as the
    record's step and history (the record's own when there are none), and other changes."""

    steps: tuple[Step, ...]
    step: Step
    history: tuple[StepTiming, ...]
    changes: Changes  # other changes noted since the last write (trace, target)


_STEP_NAMES: dict[Step, str] = {
    "started": "start", "prepared": "prepare", "applied": "apply", "verified": "verify",
    "promoted": "promote", "propagated": "propagate", "retired": "retire", "finished": "finish",
}


def _describe(exc: Exception) -> str:
    """An error for the journal and logs. Our own errors never hold values; a library's
    error might quote its input, so only its type is kept."""
    detail = str(exc) if isinstance(exc, RotatorError) else type(exc).__name__
    return f"{type(exc).__name__}: {detail}"
