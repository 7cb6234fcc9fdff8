"""Injected failures and the request log of the Kubernetes twin.

A :class:`Fault` hits the next ``count`` requests that match its ``method``, ``path_contains``
and ``path_equals`` (the decoded path, e.g. ``/apis/external-secrets.io/v1/namespaces/apps/
externalsecrets/db``). It answers with a ``Status`` for its code (503 ServiceUnavailable by
default; 429 TooManyRequests with ``Retry-After`` as API Priority and Fairness sends it; 409,
500, 504...), drops the connection (``status=0``), or with ``status=200`` and
``delay_seconds`` answers normally but late. Faults act before authentication, as an
overloaded or restarting API server (or a proxy in front of it) would. With
``after_processing`` the request is served first and only its answer is replaced: the lost
response of a patch that landed.

The request log records method, path, query, the authenticated user (``None`` when
rejected), the RBAC verb, the request's Content-Type (to check which patch type a client
sent) and the status; never headers, tokens or bodies.

Arming, consuming and timing are shared with the other twins (:mod:`twins.http.faults`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from twins.http import faults, request_log
from twins.kubernetes import errors


@dataclass
class Fault:
    """One armed fault; ``count`` goes down as matching requests consume it."""

    status: int = 503
    count: int = 1
    method: str | None = None
    path_contains: str | None = None
    path_equals: str | None = None
    after_processing: bool = False
    delay_seconds: float = 0.0
    retry_after: int | None = None
    message: str | None = None

    def __post_init__(self) -> None:
        faults.check_fault(self.status, self.count, self.delay_seconds)

    def matches(self, method: str, path: str) -> bool:
        """True when a request's method and decoded path fit this fault's filters."""
        if self.method is not None and self.method.upper() != method.upper():
            return False
        if self.path_equals is not None and self.path_equals.rstrip("/") != path.rstrip("/"):
            return False
        return self.path_contains is None or self.path_contains in path

    def error(self) -> errors.ApiError:
        """The Status this fault answers with (not used for a dropped connection)."""
        reason, message = errors.FAULT_REASONS.get(self.status, ("", "injected by the twin"))
        details: dict[str, Any] | None = None
        if self.retry_after is not None:
            details = {"retryAfterSeconds": self.retry_after}
        return errors.ApiError(self.status, reason, self.message or message, details)

    def headers(self) -> list[tuple[str, str]]:
        """``Retry-After`` when one was configured."""
        return [] if self.retry_after is None else [("Retry-After", str(self.retry_after))]

    def to_json(self) -> dict[str, Any]:
        """The fault as plain data."""
        return asdict(self)


FaultInjector = faults.FaultInjector[Fault]


@dataclass(frozen=True)
class RecordedRequest:
    """One API request; ``status`` is 0 for a dropped connection."""

    method: str
    path: str
    query: Mapping[str, str] = field(default_factory=dict)
    user: str | None = None
    verb: str = ""
    content_type: str = ""
    status: int = 0


RequestLog = request_log.RequestLog[RecordedRequest]
