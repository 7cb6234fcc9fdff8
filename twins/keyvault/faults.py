"""Injected failures and the request log: what tests use to make the twin misbehave and watch it.

A fault answers the next ``count`` matching *authenticated* requests with an error status and
a Key Vault error body, or drops the connection without answering (``status=0``). With
``after_processing`` the operation is carried out first and only its response is lost, the
case where a client's retry of a set creates a second version. The SDK's
unauthenticated challenge probe never consumes a fault, so "fail the next set" means the set
the caller can see. Defaults mirror Key Vault: a 429 is ``Throttled`` with the
``VaultRequestTypeLimitReached`` reason and, as observed, no ``Retry-After`` unless asked for.

A *slow* fault (``delay_seconds``) holds the answer back that long; with ``status=200`` the
answer is the operation's own, only late (before or after the operation is carried out, by
``after_processing``), which is how a client's read timeout meets a write that still lands.

The request log records method, path, query, whether a bearer token was presented, and the
status returned; never headers, bodies or secret values.

Arming, consuming, timing and the log itself are shared with the Jenkins twin
(:mod:`twins.http.faults`, :mod:`twins.http.request_log`); this module holds what is Key
Vault's: the fault's fields and error body, and what a recorded request keeps.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from twins.http import faults, request_log
from twins.keyvault.errors import DEFAULT_FAULT_ERRORS, VaultError


@dataclass
class Fault:
    """One armed fault; ``count`` is decremented as matching requests consume it."""

    status: int = 429
    count: int = 1
    retry_after: float | int | str | None = None
    method: str | None = None
    path_contains: str | None = None
    code: str | None = None
    message: str | None = None
    after_processing: bool = False
    path_equals: str | None = None  # the whole path, case-insensitive, e.g. /secrets/db
    delay_seconds: float = 0.0

    def __post_init__(self) -> None:
        faults.check_fault(self.status, self.count, self.delay_seconds)

    def matches(self, method: str, path: str) -> bool:
        """True when the request's method and path fit this fault's filters."""
        if self.method is not None and self.method.upper() != method.upper():
            return False
        if self.path_equals is not None and self.path_equals.lower() != path.rstrip("/").lower():
            return False
        return self.path_contains is None or self.path_contains in path

    def error(self) -> VaultError:
        """The Key Vault error this fault answers with (not used for dropped connections)."""
        default_code, default_message = DEFAULT_FAULT_ERRORS.get(
            self.status, ("Error", "The twin injected a failure.")
        )
        return VaultError(self.status, self.code or default_code, self.message or default_message)

    def headers(self) -> dict[str, str]:
        """Extra response headers: ``Retry-After`` only when one was configured."""
        if self.retry_after is None:
            return {}
        return {"Retry-After": str(self.retry_after)}

    def to_json(self) -> dict[str, Any]:
        """The fault as the admin endpoint shows it."""
        return asdict(self)


FaultInjector = faults.FaultInjector[Fault]


@dataclass(frozen=True)
class RecordedRequest:
    """One request the vault API answered. ``status`` is 0 for a dropped connection."""

    method: str
    path: str
    query: Mapping[str, str] = field(default_factory=dict)
    authenticated: bool = False
    status: int = 0


class RequestLog(request_log.RequestLog[RecordedRequest]):
    """The vault's request log; equal to any sequence with the same records, for assertions."""

    def __eq__(self, other: object) -> bool:
        """Compare by content, so ``twin.requests == [RecordedRequest(...), ...]`` works."""
        if isinstance(other, RequestLog):
            return self.snapshot() == other.snapshot()
        if isinstance(other, Sequence) and not isinstance(other, str | bytes):
            return self.snapshot() == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]
