"""Retries for transient failures only, with exponential backoff and full jitter (tenacity).

One retry layer: the Key Vault client is built with azure-core's own retries turned off, so
the number of attempts a rotation makes is exactly ``RetrySettings.attempts``. A server's
``Retry-After`` hint is honoured, capped at ``max_seconds`` (past that, Event Grid's own
redelivery or the next sweep is the better retry). Authentication, validation and
configuration errors are :class:`~rotation.errors.PermanentError` and are never retried.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from rotation.errors import TransientError
from rotation.settings import RetrySettings

logger = logging.getLogger(__name__)
T = TypeVar("T")


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
        stop=stop_after_attempt(policy.attempts),
        wait=_BackoffOrRetryAfter(policy),
        before_sleep=log_retry,
        reraise=True,
    )
    return retrying(action)
