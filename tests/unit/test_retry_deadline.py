"""Retries stop at a deadline: no retry starts whose wait and one more call would end past
it, nested deadlines keep the earlier, and the wait weighed is the real one (``Retry-After``).
Waits are hundredths of a second; what is asserted is how many calls were made."""

from __future__ import annotations

import pytest

from rotation.errors import TransientError
from rotation.retry import call_with_retry, deadline
from rotation.settings import RetrySettings

POLICY = RetrySettings(attempts=5, initial_seconds=0.01, max_seconds=30.0)


class Failing:
    """An action that fails transiently every time, with the server's hint."""

    def __init__(self, retry_after: float | None = None) -> None:
        self.calls = 0
        self.retry_after = retry_after

    def __call__(self) -> None:
        self.calls += 1
        raise TransientError("busy", retry_after=self.retry_after)


def test_without_a_deadline_every_attempt_is_made() -> None:
    action = Failing()
    with pytest.raises(TransientError):
        call_with_retry(action, policy=POLICY, what="test")
    assert action.calls == POLICY.attempts


def test_a_retry_that_fits_before_the_deadline_is_made() -> None:
    """A short back-off and a 10 s call fit in 25 s, though the longest back-off would not."""
    action = Failing()
    with deadline(25, per_call_seconds=10), pytest.raises(TransientError):
        call_with_retry(action, policy=POLICY, what="test")
    assert action.calls == POLICY.attempts


def test_no_retry_starts_when_one_more_call_would_end_past_the_deadline() -> None:
    action = Failing()
    with deadline(5, per_call_seconds=10), pytest.raises(TransientError):
        call_with_retry(action, policy=POLICY, what="test")
    assert action.calls == 1


def test_the_servers_retry_after_is_the_wait_weighed() -> None:
    """Retry-After 20 s plus a 15 s call does not fit in 25 s; Retry-After 1 s does, four times."""
    action = Failing(retry_after=20)
    with deadline(25, per_call_seconds=15), pytest.raises(TransientError):
        call_with_retry(action, policy=POLICY, what="test")
    assert action.calls == 1
    hinted = Failing(retry_after=1)
    with deadline(25, per_call_seconds=15), pytest.raises(TransientError):
        call_with_retry(hinted, policy=POLICY, what="test")
    assert hinted.calls == POLICY.attempts


def test_nested_deadlines_keep_the_earlier_one() -> None:
    """A step's lease (long) inside an invocation's budget (short): the budget holds."""
    action = Failing()
    with deadline(5, per_call_seconds=10), deadline(600, per_call_seconds=10), \
            pytest.raises(TransientError):
        call_with_retry(action, policy=POLICY, what="test")
    assert action.calls == 1
    later = Failing()
    with deadline(600, per_call_seconds=1), deadline(60, per_call_seconds=1), \
            pytest.raises(TransientError):
        call_with_retry(later, policy=POLICY, what="test")
    assert later.calls == POLICY.attempts
