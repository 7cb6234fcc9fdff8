"""Injected failures and the request log for the twin's Jenkins surface.

A :class:`Fault` hits the next ``count`` Jenkins requests that match its ``method``,
``endpoint`` (the end of the path, e.g. ``generateNewToken`` or ``whoAmI/api/json``) and
``path_contains``. It answers with an error status (503 by default, with Jenkins' "getting
ready" page; any other status gets Jetty's error page), drops the connection without an answer
(``status=0``), or, with ``status=200`` and ``delay_seconds``, answers normally but late.

Faults apply before authentication, as a proxy in front of Jenkins or a restarting controller
would. With ``after_processing`` the request is served first and only its answer is replaced
(or delayed): the lost response of ``generateNewToken``, where the token exists but its
plaintext never reached the client. ``/_twin`` control calls never consume a fault and are
not logged.

Arming, consuming, timing and the log itself are shared with the Key Vault twin
(:mod:`twins.http.faults`, :mod:`twins.http.request_log`); this module holds what is Jenkins':
the fault's fields and filters, and what a recorded request keeps.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from twins.http import faults, request_log


@dataclass
class Fault:
    """One armed fault; ``count`` goes down as matching requests consume it."""

    status: int = 503
    count: int = 1
    method: str | None = None
    endpoint: str | None = None
    path_contains: str | None = None
    after_processing: bool = False
    delay_seconds: float = 0.0
    body: str | None = None
    retry_after: int | str | None = None

    def __post_init__(self) -> None:
        faults.check_fault(self.status, self.count, self.delay_seconds)

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> Fault:
        """A fault from the control surface's JSON; ``ValueError`` for unknown or bad fields."""
        known = {f.name for f in fields(cls)}
        unknown = set(body) - known
        if unknown:
            raise ValueError(f"unknown fault fields: {', '.join(sorted(unknown))}")
        try:
            return cls(**body)
        except TypeError as exc:
            raise ValueError(str(exc)) from exc

    def matches(self, method: str, path: str) -> bool:
        """True when a request's method and path (as sent, percent-encoded) fit this fault's filters."""
        if self.method is not None and self.method.upper() != method.upper():
            return False
        if self.endpoint is not None:
            trimmed, wanted = path.rstrip("/"), self.endpoint.strip("/")
            if trimmed != "/" + wanted and not trimmed.endswith("/" + wanted):
                return False
        return self.path_contains is None or self.path_contains in path

    def to_json(self) -> dict[str, Any]:
        """The fault as the control surface shows it."""
        return asdict(self)


FaultInjector = faults.FaultInjector[Fault]


@dataclass(frozen=True)
class RecordedRequest:
    """One Jenkins request: who it was authenticated as (``None``: rejected) and the status.

    ``status`` is 0 for a dropped connection. Headers, bodies and credentials are never kept.
    """

    method: str
    path: str
    caller: str | None
    status: int


RequestLog = request_log.RequestLog[RecordedRequest]
