"""Retries for transient failures only, with exponential backoff and full jitter (tenacity).

One retry layer: the Key Vault client is built with azure-core's own retries turned off, so
the number of attempts a rotation makes is exactly ``RetrySettings.attempts``. A server's
``Retry-After`` hint is honoured, capped at ``max_seconds`` (past that, Event Grid's own
redelivery or the next sweep is the better retry). Authentication, validation and
configuration errors are :class:`~rotation.errors.PermanentError` and are never retried.

Retries also stop at a *deadline* when one is set (:func:`deadline`): the rotation engine sets
it to the end of the worker's lease, so no retry starts that could outlive the lease, and the
Event Grid function to its invocation's budget, so that retries never keep an invocation past
Event Grid's 30 s wait for an answer (past it the delivery counts as failed anyway).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TypeVar

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)
from tenacity.stop import stop_base

from rotation.errors import TransientError
from rotation.settings import RetrySettings

logger = logging.getLogger(__name__)
T = TypeVar("T")
#: The deadlines in force, each (monotonic deadline, the longest one call may take).
_DEADLINES: ContextVar[tuple[tuple[float, float], ...]] = ContextVar("retry_deadlines", default=())


@contextmanager
def deadline(seconds_from_now: float, *, per_call_seconds: float) -> Iterator[None]:
    """Within the block, no retry starts unless its wait and one more call of at most
    ``per_call_seconds`` end before ``seconds_from_now`` has passed. Nested, every deadline in
    force holds: a step's lease (whose calls may take their whole timeout) inside an Event Grid
    invocation's budget."""
    bound = (time.monotonic() + seconds_from_now, per_call_seconds)
    token = _DEADLINES.set((*_DEADLINES.get(), bound))
    try:
        yield
    finally:
        _DEADLINES.reset(token)


class _PastDeadline(stop_base):
    """tenacity stop condition: the next try, after its wait, would end past a deadline.
    tenacity computes the wait before it asks the stop condition, so the wait is the real one
    (the server's ``Retry-After`` included)."""

    def __call__(self, state: RetryCallState) -> bool:
        now = time.monotonic()
        return any(now + state.upcoming_sleep + per_call > at for at, per_call in _DEADLINES.get())


class _BackoffOrRetryAfter:
    """Wait the larger of jittered backoff and the server's hint, never more than the cap."""

    def __init__(self, policy: RetrySettings) -> None:
        self._cap = policy.max_seconds
        self._backoff = wait_exponential_jitter(
            multiplier=policy.initial_seconds, max=policy.max_seconds, jitter=policy.initial_seconds
        )

    def __call__(self, state: RetryCallState) -> float:
        backoff = float(self._backoff(state))
        exc = state.outcome.exception() if state.outcome else None
        hint = getattr(exc, "retry_after", None) or 0.0
        return min(max(backoff, float(hint)), self._cap)


def call_with_retry(action: Callable[[], T], *, policy: RetrySettings, what: str) -> T:
    """Run ``action``; repeat it on :class:`TransientError` up to ``policy.attempts`` times."""

    def log_retry(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        logger.warning(
            "transient failure, retrying",
            extra={
                "operation": what,
                "attempt": state.attempt_number,
                "error": type(exc).__name__,
                "detail": str(exc),
                "wait_seconds": round(state.upcoming_sleep, 3),
            },
        )

    retrying = Retrying(
        retry=retry_if_exception_type(TransientError),
        stop=stop_after_attempt(policy.attempts) | _PastDeadline(),
        wait=_BackoffOrRetryAfter(policy),
        before_sleep=log_retry,
        reraise=True,
    )
    return retrying(action)
