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
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any, overload

DROP_CONNECTION = 0
ANSWER_NORMALLY = 200  # with delay_seconds: the real answer, late
MAX_DELAY_SECONDS = 60.0


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
        if self.status == ANSWER_NORMALLY:
            if self.delay_seconds <= 0:
                raise ValueError("status 200 answers normally, so it needs delay_seconds")
        elif self.status != DROP_CONNECTION and not 400 <= self.status <= 599:
            raise ValueError(
                "fault status must be 0 (drop the connection), 400-599, or 200 with delay_seconds"
            )
        if not 0 <= self.delay_seconds <= MAX_DELAY_SECONDS:
            raise ValueError(f"fault delay_seconds must be 0-{MAX_DELAY_SECONDS:g}")
        if self.count < 1:
            raise ValueError("fault count must be at least 1")

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


class FaultInjector:
    """Armed faults, consumed first-in first-out by matching requests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> Fault:
        """Arm a fault behind any already armed."""
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> int:
        """Disarm everything; returns how many faults were armed."""
        with self._lock:
            cleared = len(self._faults)
            self._faults.clear()
            return cleared

    def take(self, method: str, path: str) -> Fault | None:
        """Consume one use of the first matching fault, if any (a copy of it)."""
        with self._lock:
            for fault in self._faults:
                if fault.matches(method, path):
                    fault.count -= 1
                    if fault.count == 0:
                        self._faults.remove(fault)
                    return Fault(**{**asdict(fault), "count": 1})
        return None

    def pending(self) -> list[Fault]:
        """The faults still armed (copies)."""
        with self._lock:
            return [Fault(**asdict(f)) for f in self._faults]


@dataclass(frozen=True)
class RecordedRequest:
    """One Jenkins request: who it was authenticated as (``None``: rejected) and the status.

    ``status`` is 0 for a dropped connection. Headers, bodies and credentials are never kept.
    """

    method: str
    path: str
    caller: str | None
    status: int


class RequestLog(Sequence[RecordedRequest]):
    """Append-only, thread-safe list of :class:`RecordedRequest` for test assertions."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[RecordedRequest] = []

    def append(self, item: RecordedRequest) -> None:
        """Record a request once its answer is decided."""
        with self._lock:
            self._items.append(item)

    def clear(self) -> None:
        """Forget everything recorded so far."""
        with self._lock:
            self._items.clear()

    def snapshot(self) -> list[RecordedRequest]:
        """A plain list copy, stable while the server keeps recording."""
        with self._lock:
            return list(self._items)

    @overload
    def __getitem__(self, index: int) -> RecordedRequest: ...

    @overload
    def __getitem__(self, index: slice) -> list[RecordedRequest]: ...

    def __getitem__(self, index: int | slice) -> RecordedRequest | list[RecordedRequest]:
        with self._lock:
            return self._items[index]

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def __iter__(self) -> Iterator[RecordedRequest]:
        return iter(self.snapshot())

    def __repr__(self) -> str:
        return f"RequestLog({self.snapshot()!r})"
