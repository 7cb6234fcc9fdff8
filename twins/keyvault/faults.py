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
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, overload

from twins.keyvault.errors import DEFAULT_FAULT_ERRORS, VaultError

DROP_CONNECTION = 0
ANSWER_NORMALLY = 200  # with delay_seconds: the real answer, late


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
        if self.status == ANSWER_NORMALLY:
            if self.delay_seconds <= 0:
                raise ValueError("status 200 answers normally, so it needs delay_seconds")
        elif self.status != DROP_CONNECTION and not 400 <= self.status <= 599:
            raise ValueError("fault status must be 0 (drop the connection), 400-599, or 200 "
                             "with delay_seconds (answer late)")
        if not 0 <= self.delay_seconds <= 60:
            raise ValueError("fault delay_seconds must be 0-60")
        if self.count < 1:
            raise ValueError("fault count must be at least 1")

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


class FaultInjector:
    """Armed faults, consumed first-in first-out by matching requests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> None:
        """Arm a fault behind any already armed."""
        with self._lock:
            self._faults.append(fault)

    def clear(self) -> int:
        """Disarm everything; returns how many faults were armed."""
        with self._lock:
            cleared = len(self._faults)
            self._faults.clear()
            return cleared

    def take(self, method: str, path: str) -> Fault | None:
        """Consume one use of the first matching fault, if any."""
        with self._lock:
            for fault in self._faults:
                if fault.matches(method, path):
                    fault.count -= 1
                    if fault.count == 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def pending(self) -> list[Fault]:
        """The faults still armed (copies)."""
        with self._lock:
            return [Fault(**asdict(f)) for f in self._faults]


@dataclass(frozen=True)
class RecordedRequest:
    """One request the vault API answered. ``status`` is 0 for a dropped connection."""

    method: str
    path: str
    query: Mapping[str, str] = field(default_factory=dict)
    authenticated: bool = False
    status: int = 0


class RequestLog(Sequence[RecordedRequest]):
    """Append-only, thread-safe list of :class:`RecordedRequest` for test assertions."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[RecordedRequest] = []

    def append(self, item: RecordedRequest) -> None:
        """Record a request (called by the server once the response is decided)."""
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

    def __eq__(self, other: object) -> bool:
        """Compare by content, so ``twin.requests == [RecordedRequest(...), ...]`` works."""
        if isinstance(other, RequestLog):
            return self.snapshot() == other.snapshot()
        if isinstance(other, Sequence) and not isinstance(other, str | bytes):
            return self.snapshot() == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"RequestLog({self.snapshot()!r})"
