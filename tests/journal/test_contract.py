"""The journal's contract, run against every backend: memory, SQLite, Azure Tables (Azurite)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import fields, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from rotation.errors import ConcurrentRotation, InvalidRequest, PermanentError, TransientError
from rotation.ids import RotationId, VersionId
from rotation.journal import (
    Begun,
    Busy,
    Duplicate,
    InvalidTransition,
    Journal,
    JournalConflict,
    LeaseHeld,
    LeaseLost,
    NotYetDue,
    RotationFinished,
    RotationNotFound,
    RotationRecord,
    StepTiming,
    codec,
)
from rotation.journal.base import MAX_ERROR_CHARS, QueueMark
from rotation.propagation import progress
from tests.journal.conftest import JournalFactory
from tests.journal.records import (
    NOW,
    SECRET,
    TTL,
    V1,
    V2,
    VAULT,
    full_record,
    new_id,
    propagation,
    record,
)


def begun(journal: Journal, rec: RotationRecord, **kwargs: Any) -> RotationRecord:
    outcome = journal.begin(rec, now=NOW, **kwargs)
    assert isinstance(outcome, Begun), outcome
    return outcome.record


def started(journal: Journal, **kwargs: Any) -> RotationRecord:
    """A begun and claimed rotation."""
    return journal.claim(begun(journal, record(**kwargs)), owner="w1", now=NOW, ttl=TTL)


def timing(step: Any, attempt: int = 1) -> StepTiming:
    return StepTiming(step, NOW, 1.5, attempt)


# ---- begin ----------------------------------------------------------------------------------

def test_begin_stores_the_record_and_makes_it_active(journal: Journal) -> None:
    rec = record()
    stored = begun(journal, rec)
    assert stored == rec and stored.etag
    assert journal.get(rec.rotation_id) == rec
    assert journal.get(rec.rotation_id).etag == stored.etag  # type: ignore[union-attr]
    assert journal.active(VAULT, SECRET) == rec
    assert journal.claimed_by(VAULT, SECRET, V1) == rec
    assert journal.claimed_by(VAULT, SECRET, V2) is None


@pytest.mark.parametrize("retry_failed", [False, True])
def test_a_rotation_begun_already_leased_keeps_its_lease_attempt_and_target(
        journal: Journal, retry_failed: bool) -> None:
    """The service begins a rotation leased to its worker (begin and claim in one write,
    rotation/service.py): the journal stores the lease as given, so no other worker can take
    the rotation before its lease ends, and the holder advances it."""
    if retry_failed:
        journal.close(started(journal), now=NOW, status="failed", last_error="boom")
    rec = record(created_at=NOW + timedelta(minutes=1)).with_changes(
        attempts=1, lease_owner="w1", lease_until=NOW + TTL, target_id="pg-main")
    stored = begun(journal, rec, retry_failed=retry_failed)
    assert journal.get(rec.rotation_id) == stored == rec
    assert (stored.lease_owner, stored.lease_until, stored.attempts, stored.target_id) == (
        "w1", NOW + TTL, 1, "pg-main")
    with pytest.raises(LeaseHeld):
        journal.claim(rec.rotation_id, owner="w2", now=NOW + timedelta(minutes=2), ttl=TTL)
    advanced = journal.advance(stored, now=NOW + timedelta(minutes=2), ttl=TTL, step="prepared")
    assert advanced.step == "prepared" and advanced.lease_owner == "w1"


def test_begin_of_a_version_already_claimed_is_a_duplicate_and_writes_nothing(journal: Journal) -> None:
    first = begun(journal, record())
    outcome = journal.begin(record(), now=NOW)
    assert isinstance(outcome, Duplicate) and outcome.record == first
    assert journal.for_secret(VAULT, SECRET) == [first]


def test_begin_while_another_version_is_unfinished_is_busy(journal: Journal) -> None:
    first = begun(journal, record(version=V1))
    second = record(version=V2)
    outcome = journal.begin(second, now=NOW)
    assert isinstance(outcome, Busy) and outcome.record == first
    assert journal.get(second.rotation_id) is None
    assert journal.claimed_by(VAULT, SECRET, V2) is None


def test_begin_again_with_the_same_rotation_id_answers_begun(journal: Journal) -> None:
    rec = record()
    first = begun(journal, rec)
    again = journal.begin(rec, now=NOW)
    assert isinstance(again, Begun) and again.record == first and again.record.etag == first.etag


def test_secret_names_are_case_insensitive(journal: Journal) -> None:
    first = begun(journal, record(secret="App-DB", vault="KV-Prod"))
    assert isinstance(journal.begin(record(secret="app-db"), now=NOW), Duplicate)
    assert journal.active("kv-prod", "APP-DB") == first


def test_close_clears_the_head_so_a_new_rotation_may_begin(journal: Journal) -> None:
    first = started(journal, version=V1)
    closed = journal.close(first, now=NOW + timedelta(minutes=1), status="succeeded")
    assert journal.active(VAULT, SECRET) is None
    second = begun(journal, record(version=V2))
    assert journal.active(VAULT, SECRET) == second
    assert isinstance(journal.begin(record(version=V1), now=NOW), Duplicate)
    assert journal.get(first.rotation_id) == closed


def test_retry_failed_moves_the_claim_to_a_new_rotation(journal: Journal) -> None:
    failed = journal.close(started(journal), now=NOW, status="failed", last_error="boom")
    plain = journal.begin(record(), now=NOW)
    assert isinstance(plain, Duplicate) and plain.record == failed
    retry = record(created_at=NOW + timedelta(minutes=1))
    outcome = journal.begin(retry, now=NOW, retry_failed=True)
    assert isinstance(outcome, Begun) and outcome.record == retry
    assert journal.claimed_by(VAULT, SECRET, V1) == retry
    assert journal.active(VAULT, SECRET) == retry
    assert journal.get(failed.rotation_id) == failed
    assert journal.for_secret(VAULT, SECRET) == [retry, failed]


@pytest.mark.parametrize("status", ["running", "succeeded"])
def test_retry_failed_does_not_replace_a_rotation_that_did_not_fail(journal: Journal,
                                                                     status: str) -> None:
    first = started(journal)
    if status == "succeeded":
        first = journal.close(first, now=NOW, status="succeeded")
    outcome = journal.begin(record(), now=NOW, retry_failed=True)
    assert isinstance(outcome, Duplicate) and outcome.record == first


def test_retry_failed_is_still_busy_while_another_version_runs(journal: Journal) -> None:
    journal.close(started(journal, version=V1), now=NOW, status="failed")
    running = begun(journal, record(version=V2))
    outcome = journal.begin(record(version=V1), now=NOW, retry_failed=True)
    assert isinstance(outcome, Busy) and outcome.record == running


def test_begin_refuses_a_finished_record_and_bad_names(journal: Journal) -> None:
    with pytest.raises(InvalidTransition):
        journal.begin(replace(record(), status="failed"), now=NOW)
    with pytest.raises(InvalidRequest):
        journal.begin(record(secret="app/db"), now=NOW)
    with pytest.raises(InvalidRequest):
        journal.begin(record(version="v#1"), now=NOW)
    with pytest.raises(ValueError, match="timezone-aware"):
        journal.begin(record(), now=datetime(2026, 1, 1))


# ---- claim ----------------------------------------------------------------------------------

def test_claim_takes_the_lease_and_counts_an_attempt(journal: Journal) -> None:
    rec = begun(journal, record())
    later = NOW + timedelta(seconds=10)
    claimed = journal.claim(rec.rotation_id, owner="w1", now=later, ttl=TTL)
    assert claimed == replace(rec, attempts=1, lease_owner="w1", lease_until=later + TTL,
                              updated_at=later)
    assert claimed.etag != rec.etag
    assert journal.get(rec.rotation_id) == claimed
    again = journal.claim(claimed, owner="w1", now=later, ttl=TTL)  # the same owner re-takes
    assert again.attempts == 2


def test_claim_of_a_valid_lease_of_another_owner_is_refused(journal: Journal) -> None:
    claimed = started(journal)
    with pytest.raises(LeaseHeld) as caught:
        journal.claim(claimed.rotation_id, owner="w2", now=NOW + TTL - timedelta(seconds=1), ttl=TTL)
    assert caught.value.record == claimed
    assert caught.value.rotation_id == claimed.rotation_id
    assert isinstance(caught.value, ConcurrentRotation)


def test_an_expired_lease_is_taken_over_and_the_old_owner_loses(journal: Journal) -> None:
    old = started(journal)
    taken = journal.claim(old.rotation_id, owner="w2", now=NOW + TTL, ttl=TTL)
    assert (taken.lease_owner, taken.attempts) == ("w2", 2)
    with pytest.raises(LeaseLost) as caught:
        journal.advance(old, now=NOW + TTL, ttl=TTL, step="prepared")
    assert caught.value.record == taken and caught.value.rotation_id == old.rotation_id
    assert journal.get(old.rotation_id) == taken


def test_claim_refuses_unknown_and_finished_rotations(journal: Journal) -> None:
    with pytest.raises(RotationNotFound):
        journal.claim(new_id(), owner="w1", now=NOW, ttl=TTL)
    done = journal.close(started(journal), now=NOW, status="succeeded")
    with pytest.raises(RotationFinished) as caught:
        journal.claim(done.rotation_id, owner="w1", now=NOW, ttl=TTL)
    assert isinstance(caught.value, PermanentError) and caught.value.record == done


def test_claim_before_next_attempt_is_not_yet_due(journal: Journal) -> None:
    due = NOW + timedelta(seconds=90)
    released = journal.release(started(journal), now=NOW, next_attempt_at=due, last_error="x")
    with pytest.raises(NotYetDue) as caught:
        journal.claim(released.rotation_id, owner="w2", now=NOW + timedelta(seconds=30), ttl=TTL)
    assert isinstance(caught.value, TransientError)
    assert caught.value.retry_after == pytest.approx(60.0)
    assert caught.value.record == released
    assert journal.claim(released.rotation_id, owner="w2", now=due, ttl=TTL).lease_owner == "w2"


def test_claim_refuses_bad_arguments(journal: Journal) -> None:
    rec = begun(journal, record())
    with pytest.raises(ValueError):
        journal.claim(rec, owner="", now=NOW, ttl=TTL)
    with pytest.raises(ValueError):
        journal.claim(rec, owner="w1", now=NOW, ttl=timedelta(0))
    with pytest.raises(InvalidRequest):
        journal.claim("no/such", owner="w1", now=NOW, ttl=TTL)


# ---- advance --------------------------------------------------------------------------------

def test_advance_saves_changes_and_renews_the_lease(journal: Journal) -> None:
    claimed = started(journal)
    later = NOW + timedelta(minutes=3)
    moved = journal.advance(claimed, now=later, ttl=TTL, step="prepared",
                            pending_version=VersionId("cc" * 16), steps=(timing("prepared"),))
    assert moved == replace(claimed, step="prepared", pending_version=VersionId("cc" * 16),
                            steps=(timing("prepared"),), updated_at=later, lease_until=later + TTL)
    assert journal.get(claimed.rotation_id) == moved
    again = journal.advance(moved, now=later, ttl=TTL, step="prepared")  # same step: allowed
    assert again.etag != moved.etag


def test_advance_with_a_stale_record_is_lease_lost(journal: Journal) -> None:
    claimed = started(journal)
    current = journal.advance(claimed, now=NOW, ttl=TTL, step="prepared")
    with pytest.raises(LeaseLost) as caught:
        journal.advance(claimed, now=NOW, ttl=TTL, step="applied")
    assert caught.value.record == current
    assert journal.get(claimed.rotation_id) == current


def test_advance_never_moves_the_step_backwards(journal: Journal) -> None:
    applied = journal.advance(started(journal), now=NOW, ttl=TTL, step="applied")
    with pytest.raises(InvalidTransition, match="back"):
        journal.advance(applied, now=NOW, ttl=TTL, step="prepared")
    with pytest.raises(InvalidTransition):
        journal.advance(applied, now=NOW, ttl=TTL, step="nonsense")
    assert journal.get(applied.rotation_id) == applied


@pytest.mark.parametrize("changes", [
    {"attempts": 9}, {"lease_owner": "me"}, {"lease_until": NOW}, {"rotation_id": "x"},
    {"created_at": NOW}, {"finished_at": NOW}, {"from_version": V2}, {"status": "succeeded"},
    {"status": "failed"}, {"steps": ()},
])
def test_advance_refuses_what_only_the_journal_or_close_may_change(
    journal: Journal, changes: dict[str, Any]
) -> None:
    claimed = journal.advance(started(journal), now=NOW, ttl=TTL, steps=(timing("started"),))
    with pytest.raises(InvalidTransition):
        journal.advance(claimed, now=NOW, ttl=TTL, **changes)
    with pytest.raises(TypeError):
        journal.advance(claimed, now=NOW, ttl=TTL, no_such_field=1)
    assert journal.get(claimed.rotation_id) == claimed


def test_advance_needs_a_claimed_record_from_the_journal(journal: Journal) -> None:
    rec = begun(journal, record())
    with pytest.raises(InvalidTransition, match="claimed"):
        journal.advance(rec, now=NOW, ttl=TTL, step="prepared")
    with pytest.raises(InvalidTransition, match="not read"):
        journal.advance(replace(rec, etag=None, lease_owner="w1"), now=NOW, ttl=TTL)


def test_awaiting_retirement_keeps_the_secret_busy_until_closed(journal: Journal) -> None:
    promoted = journal.advance(started(journal), now=NOW, ttl=TTL, step="propagated",
                               new_version="dd" * 16, retire_after=NOW + timedelta(days=1))
    waiting = journal.advance(promoted, now=NOW, ttl=TTL, status="awaiting-retirement")
    parked = journal.release(waiting, now=NOW, next_attempt_at=waiting.retire_after, last_error=None)
    assert journal.active(VAULT, SECRET) == parked
    assert parked in journal.unfinished()
    assert isinstance(journal.begin(record(version=V2), now=NOW), Busy)
    resumed = journal.claim(parked.rotation_id, owner="sweeper", now=NOW + timedelta(days=1),
                            ttl=TTL)
    retired = journal.advance(resumed, now=NOW, ttl=TTL, step="retired", status="running")
    journal.close(retired, now=NOW, status="succeeded", step="finished")
    assert journal.unfinished() == []
    assert isinstance(journal.begin(record(version=V2), now=NOW), Begun)


# ---- release and close ----------------------------------------------------------------------

def test_release_frees_the_lease_for_another_worker(journal: Journal) -> None:
    claimed = started(journal)
    released = journal.release(claimed, now=NOW + timedelta(seconds=5), next_attempt_at=None,
                               last_error="TransientError: 503")
    assert released == replace(claimed, lease_owner=None, lease_until=None,
                               last_error="TransientError: 503",
                               updated_at=NOW + timedelta(seconds=5))
    kept = journal.release(journal.claim(released, owner="w2", now=NOW, ttl=TTL), now=NOW,
                           next_attempt_at=None, last_error=None)
    assert kept.last_error == "TransientError: 503"  # None keeps the last one
    with pytest.raises(LeaseLost):
        journal.release(claimed, now=NOW, next_attempt_at=None, last_error=None)


def test_close_finishes_and_drops_the_lease(journal: Journal) -> None:
    claimed = journal.release(started(journal), now=NOW, next_attempt_at=NOW, last_error="e1")
    claimed = journal.claim(claimed, owner="w1", now=NOW, ttl=TTL)
    end = NOW + timedelta(minutes=2)
    closed = journal.close(claimed, now=end, status="failed", last_error="VerificationFailed: no",
                           steps=(timing("started", 2),))
    assert closed == replace(claimed, status="failed", finished_at=end, updated_at=end,
                             lease_owner=None, lease_until=None, next_attempt_at=None,
                             last_error="VerificationFailed: no", steps=(timing("started", 2),))
    assert closed.finished and journal.get(closed.rotation_id) == closed
    with pytest.raises(RotationFinished):
        journal.advance(closed, now=NOW, ttl=TTL, step="prepared")
    with pytest.raises(RotationFinished):
        journal.close(closed, now=NOW, status="succeeded")
    with pytest.raises(LeaseLost) as caught:
        journal.close(claimed, now=NOW, status="succeeded")  # stale: it already closed
    assert caught.value.record == closed


def test_close_refuses_unfinished_statuses(journal: Journal) -> None:
    claimed = started(journal)
    with pytest.raises(InvalidTransition):
        journal.close(claimed, now=NOW, status="running")  # type: ignore[arg-type]


def test_a_long_error_is_cut(journal: Journal) -> None:
    released = journal.release(started(journal), now=NOW, next_attempt_at=None,
                               last_error="x" * 100_000)
    assert released.last_error is not None and len(released.last_error) == MAX_ERROR_CHARS
    assert journal.get(released.rotation_id) == released


# ---- reading --------------------------------------------------------------------------------

def test_for_secret_is_newest_first_and_limited(journal: Journal) -> None:
    ids = []
    for n in range(4):
        rec = started(journal, version=f"v{n}", created_at=NOW + timedelta(minutes=n))
        journal.close(rec, now=NOW, status="succeeded")
        ids.append(rec.rotation_id)
    begun(journal, record(secret="other-secret"))
    assert [r.rotation_id for r in journal.for_secret(VAULT, SECRET)] == ids[::-1]
    assert [r.rotation_id for r in journal.for_secret(VAULT, SECRET, limit=2)] == ids[:1:-1]
    assert journal.for_secret(VAULT, "never-rotated") == []


def test_unfinished_and_active_across_secrets(journal: Journal) -> None:
    a = begun(journal, record(secret="a", created_at=NOW + timedelta(seconds=2)))
    b = started(journal, secret="b", created_at=NOW + timedelta(seconds=1))
    c = journal.close(started(journal, secret="c"), now=NOW, status="succeeded")
    d = begun(journal, record(secret="d", vault="kv-other"))
    assert [r.rotation_id for r in journal.unfinished()] == [d.rotation_id, b.rotation_id,
                                                             a.rotation_id]
    assert journal.active(VAULT, "a") == a
    assert journal.active(VAULT, "c") is None and journal.get(c.rotation_id) == c
    assert journal.active(VAULT, "nothing") is None
    assert journal.get(new_id()) is None


def test_every_field_round_trips(journal: Journal) -> None:
    rec = full_record()
    stored = begun(journal, rec)
    got = journal.get(rec.rotation_id)
    assert got == rec == stored
    assert got is not None
    for field in fields(RotationRecord):
        value = getattr(got, field.name)
        if isinstance(value, datetime):
            assert value.utcoffset() == timedelta(0), field.name
    assert got.steps == rec.steps and isinstance(got.steps, tuple)
    assert all(t.completed_at.tzinfo is not None for t in got.steps)
    assert got.created_at.microsecond == 1
    assert journal.for_secret(VAULT, "app-db") == [rec]


def test_a_propagation_larger_than_one_property_round_trips(journal: Journal) -> None:
    rec = record().with_changes(propagation=propagation(consumers=150))
    assert len(progress.encode(rec.propagation)) > 2 * codec.MAX_TEXT_CHARS  # type: ignore[arg-type]
    begun(journal, rec)
    got = journal.get(rec.rotation_id)
    assert got is not None and got.propagation == rec.propagation


def test_a_propagation_record_claims_apart_from_a_rotation_of_the_same_version(
        journal: Journal) -> None:
    handset = record().with_changes(purpose="propagation", step="promoted", new_version=V1)
    stored = begun(journal, handset)
    journal.close(journal.claim(stored, owner="w1", now=NOW, ttl=TTL), now=NOW, status="succeeded")
    rotation = record()
    assert isinstance(journal.begin(rotation, now=NOW), Begun), "not a duplicate of the propagation"
    assert journal.claimed_by(VAULT, SECRET, V1) == journal.get(rotation.rotation_id)


def test_nothing_is_invented(journal: Journal) -> None:
    rec = record()
    stored = begun(journal, rec)
    got = journal.get(rec.rotation_id)
    assert got is not None
    for field in fields(RotationRecord):
        if field.name != "etag":
            assert getattr(got, field.name) == getattr(rec, field.name), field.name
    assert (got.attempts, got.steps, got.lease_owner, got.last_error, got.finished_at) == (
        0, (), None, None, None)
    claimed = journal.claim(stored, owner="w1", now=NOW, ttl=TTL)
    changed = {f.name for f in fields(RotationRecord)
               if getattr(claimed, f.name) != getattr(got, f.name)}
    assert changed == {"attempts", "lease_owner", "lease_until", "etag"}  # updated_at == NOW


def test_naive_datetimes_are_refused(journal: Journal) -> None:
    naive = datetime(2026, 1, 1)
    with pytest.raises(ValueError, match="timezone-aware"):
        journal.begin(replace(record(), created_at=naive), now=NOW)
    claimed = started(journal)
    with pytest.raises(ValueError, match="timezone-aware"):
        journal.advance(claimed, now=NOW, ttl=TTL, retire_after=naive)
    with pytest.raises(ValueError, match="timezone-aware"):
        journal.release(claimed, now=NOW, next_attempt_at=naive, last_error=None)
    assert journal.get(claimed.rotation_id) == claimed


# ---- races ----------------------------------------------------------------------------------

def _all_at_once(count: int, work: Callable[[int], object]) -> list[Any]:
    """Run ``work(i)`` in ``count`` threads released together; their results in order."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = work(i)
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def test_concurrent_begins_of_one_version_end_with_exactly_one_begun(
    journal_factory: JournalFactory,
) -> None:
    journals = [journal_factory() for _ in range(8)]
    outcomes = _all_at_once(8, lambda i: journals[i].begin(record(), now=NOW))
    kinds = [type(o).__name__ for o in outcomes]
    assert kinds.count("Begun") == 1, kinds
    assert set(kinds) <= {"Begun", "Duplicate", "Busy"}, outcomes
    winner = next(o.record for o in outcomes if isinstance(o, Begun))
    assert all(o.record.rotation_id == winner.rotation_id for o in outcomes)
    assert journals[0].for_secret(VAULT, SECRET) == [winner]
    assert journals[0].active(VAULT, SECRET) == winner


def test_concurrent_begins_of_different_versions_end_with_exactly_one_begun(
    journal_factory: JournalFactory,
) -> None:
    journals = [journal_factory() for _ in range(6)]
    outcomes = _all_at_once(6, lambda i: journals[i].begin(record(version=f"v{i}"), now=NOW))
    kinds = [type(o).__name__ for o in outcomes]
    assert kinds.count("Begun") == 1 and kinds.count("Busy") == 5, outcomes
    assert len(journals[0].for_secret(VAULT, SECRET)) == 1


def test_concurrent_claims_of_an_expired_lease_end_with_exactly_one_owner(
    journal_factory: JournalFactory,
) -> None:
    journals = [journal_factory() for _ in range(6)]
    old = started(journals[0])
    results = _all_at_once(6, lambda i: journals[i].claim(
        old.rotation_id, owner=f"w{i + 2}", now=NOW + 2 * TTL, ttl=TTL))
    winners = [r for r in results if isinstance(r, RotationRecord)]
    assert len(winners) == 1, results
    assert all(isinstance(r, LeaseHeld) for r in results if r is not winners[0]), results
    assert all(r.record == winners[0] for r in results if isinstance(r, JournalConflict))
    assert journals[0].get(old.rotation_id) == winners[0]
    assert winners[0].attempts == 2


def test_record_ids_are_opaque_rotation_ids(journal: Journal) -> None:
    rec = begun(journal, record(rotation_id="Rot_1.2-3"))
    assert journal.get(RotationId("Rot_1.2-3")) == rec
    assert journal.get("Rot_1.2") is None  # a prefix is not a match
    assert journal.claim("Rot_1.2-3", owner="w", now=NOW, ttl=TTL).attempts == 1


def test_timestamps_before_1601_and_far_future_round_trip(journal: Journal) -> None:
    rec = replace(record(), created_at=datetime(1500, 1, 1, tzinfo=UTC),
                  new_expiry=datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC))
    begun(journal, rec)
    assert journal.get(rec.rotation_id) == rec


def _before_next_write(journal: Journal, monkeypatch: pytest.MonkeyPatch,
                       competitor: Callable[[], object]) -> list[object]:
    """Make ``competitor`` run (once) between ``journal``'s reads and its next write: a lost
    race, deterministically. Returns what the competitor answered."""
    original = journal._transact
    answers: list[object] = []
    armed = [True]  # disarmed before the competitor runs: for memory it is this same object

    def transact(partition: str, ops: Any) -> dict[str, str]:
        if armed:
            armed.clear()
            answers.append(competitor())
        return original(partition, ops)

    monkeypatch.setattr(journal, "_transact", transact)
    return answers


def test_a_begin_that_loses_the_race_reads_again_and_is_a_duplicate(
    journal_factory: JournalFactory, monkeypatch: pytest.MonkeyPatch,
) -> None:
    loser, rival = journal_factory(), journal_factory()
    answers = _before_next_write(loser, monkeypatch, lambda: rival.begin(record(), now=NOW))
    outcome = loser.begin(record(), now=NOW)
    assert isinstance(answers[0], Begun)
    assert isinstance(outcome, Duplicate) and outcome.record == answers[0].record


def test_a_claim_that_loses_the_race_reads_again_and_finds_the_lease_held(
    journal_factory: JournalFactory, monkeypatch: pytest.MonkeyPatch,
) -> None:
    loser, rival = journal_factory(), journal_factory()
    old = started(loser)
    later = NOW + 2 * TTL
    answers = _before_next_write(
        loser, monkeypatch, lambda: rival.claim(old.rotation_id, owner="rival", now=later, ttl=TTL))
    with pytest.raises(LeaseHeld) as caught:
        loser.claim(old.rotation_id, owner="loser", now=later, ttl=TTL)
    assert caught.value.record == answers[0]


def test_a_close_retries_when_only_the_head_moved(
    journal_factory: JournalFactory, monkeypatch: pytest.MonkeyPatch,
) -> None:
    worker, other = journal_factory(), journal_factory()
    claimed = started(worker)
    stale_head = other._get(claimed_partition(claimed), "head")
    assert stale_head is not None

    def touch_head() -> object:  # rewrite the head with the same content: only its etag moves
        from rotation.journal.base import Replace

        return other._transact(claimed_partition(claimed),
                               [Replace("head", dict(stale_head.data), stale_head.etag)])

    _before_next_write(worker, monkeypatch, touch_head)
    closed = worker.close(claimed, now=NOW, status="succeeded")
    assert worker.get(claimed.rotation_id) == closed
    assert worker.active(VAULT, SECRET) is None


def claimed_partition(rec: RotationRecord) -> str:
    from rotation.journal import partition_key

    return partition_key(rec.vault, rec.secret)


# ---- the sweeper's queued marks ---------------------------------------------------------------

def test_work_is_marked_queued_once_until_its_mark_is_old(journal: Journal) -> None:
    assert journal.mark_queued(VAULT, SECRET, "rotate-1764655200", now=NOW, ttl=TTL)
    assert not journal.mark_queued(VAULT, SECRET, "rotate-1764655200", now=NOW + TTL / 2, ttl=TTL)
    assert journal.mark_queued(VAULT, SECRET, "rotate-1764655201", now=NOW, ttl=TTL), "other work"
    assert journal.mark_queued(VAULT, SECRET.upper(), "rotate-1", now=NOW, ttl=TTL)
    assert not journal.mark_queued(VAULT, SECRET, "rotate-1", now=NOW, ttl=TTL), "case-insensitive"
    assert journal.mark_queued(VAULT, SECRET, "rotate-1764655200", now=NOW + TTL, ttl=TTL), \
        "queued again once the mark is as old as the ttl (the message may be lost)"
    assert journal.for_secret(VAULT, SECRET) == [] and journal.active(VAULT, SECRET) is None
    assert journal.unfinished() == []


def test_a_queued_works_last_failure_is_kept_for_the_poison_handler(journal: Journal) -> None:
    assert journal.queue_failure(VAULT, SECRET, "rotate-9") is None
    journal.note_queue_failure(VAULT, SECRET, "rotate-9", "never marked: nothing kept")
    assert journal.queue_failure(VAULT, SECRET, "rotate-9") is None
    journal.mark_queued(VAULT, SECRET, "rotate-9", now=NOW, ttl=TTL)
    journal.note_queue_failure(VAULT, SECRET, "rotate-9", "TransientError: Key Vault answered 429")
    journal.note_queue_failure(VAULT, SECRET, "rotate-9", "TransientError: " + "x" * 10_000)
    kept = journal.queue_failure(VAULT, SECRET, "rotate-9")
    assert kept is not None and kept.startswith("TransientError: x") and len(kept) <= MAX_ERROR_CHARS
    assert not journal.mark_queued(VAULT, SECRET, "rotate-9", now=NOW, ttl=TTL)
    with pytest.raises(InvalidRequest):
        journal.mark_queued(VAULT, SECRET, "bad key!", now=NOW, ttl=TTL)


def test_concurrent_marks_of_one_piece_of_work_let_exactly_one_through(
    journal_factory: JournalFactory,
) -> None:
    journals = [journal_factory() for _ in range(8)]
    marked = _all_at_once(8, lambda i: journals[i].mark_queued(VAULT, SECRET, "rotate-7", now=NOW,
                                                               ttl=TTL))
    assert marked.count(True) == 1, marked
    assert all(m is False for m in marked if m is not True), marked
    stale = NOW + TTL
    renewed = _all_at_once(8, lambda i: journals[i].mark_queued(VAULT, SECRET, "rotate-7", now=stale,
                                                                ttl=TTL))
    assert renewed.count(True) == 1, renewed


def test_many_marks_answer_in_order_as_one_mark_each_would(journal: Journal) -> None:
    assert journal.mark_queued(VAULT, SECRET, "rotate-1", now=NOW, ttl=TTL)
    assert journal.mark_queued(VAULT, SECRET, "rotate-2", now=NOW - TTL, ttl=TTL)
    marks = [QueueMark(VAULT, SECRET, "rotate-1"),      # young: not again
             QueueMark(VAULT, SECRET, "rotate-2"),      # as old as the ttl: queued again
             QueueMark(VAULT, SECRET, "rotate-3"),      # new
             QueueMark(VAULT, "other-db", "rotate-1"),  # the same key of another secret
             QueueMark(VAULT, "OTHER-DB", "rotate-1")]  # the same work again, in one call
    assert journal.mark_queued_many(marks, now=NOW, ttl=TTL) == [False, True, True, True, False]
    assert journal.mark_queued_many(marks, now=NOW, ttl=TTL) == [False] * 5
    assert journal.mark_queued_many([], now=NOW, ttl=TTL) == []
    assert journal.unfinished() == [] and journal.for_secret(VAULT, "other-db") == []


def test_many_marks_with_one_bad_key_write_nothing(journal: Journal) -> None:
    with pytest.raises(InvalidRequest):
        journal.mark_queued_many([QueueMark(VAULT, SECRET, "rotate-1"),
                                  QueueMark(VAULT, SECRET, "bad key!")], now=NOW, ttl=TTL)
    assert journal.mark_queued(VAULT, SECRET, "rotate-1", now=NOW, ttl=TTL)


def test_concurrent_sweeps_marking_many_let_each_piece_of_work_through_once(
    journal_factory: JournalFactory,
) -> None:
    journals = [journal_factory() for _ in range(4)]
    marks = [QueueMark(VAULT, f"app-{n}", f"rotate-{n}") for n in range(40)]

    def sweep(i: int) -> list[bool]:
        ordered = marks if i % 2 == 0 else marks[::-1]  # overlapping in both directions
        answered = journals[i].mark_queued_many(ordered, now=NOW, ttl=TTL)
        return answered if i % 2 == 0 else answered[::-1]

    answers = _all_at_once(4, sweep)
    assert all(isinstance(a, list) for a in answers), answers
    assert [sum(a[n] for a in answers) for n in range(len(marks))] == [1] * len(marks)


def test_the_companion_check_note_is_per_vault_and_kept_apart_from_secrets(
    journal: Journal,
) -> None:
    assert journal.companions_checked(VAULT) is None
    journal.note_companions_checked(VAULT, NOW)
    assert journal.companions_checked(VAULT.upper()) == NOW
    journal.note_companions_checked(VAULT, NOW - TTL)  # a slower concurrent sweep: it is true too
    assert journal.companions_checked(VAULT) == NOW - TTL
    assert journal.companions_checked("kv-other") is None
    assert journal.unfinished() == [] and journal.get(new_id()) is None
    with pytest.raises(ValueError, match="timezone-aware"):
        journal.note_companions_checked(VAULT, NOW.replace(tzinfo=None))
    with pytest.raises(InvalidRequest):
        journal.companions_checked("kv_bad")
