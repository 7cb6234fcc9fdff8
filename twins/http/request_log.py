"""What a twin saw: an append-only, thread-safe sequence of recorded requests for test assertions.

Request threads append while a test reads, so every read takes the lock and iteration walks a
snapshot. What a record holds is each twin's choice (its ``RecordedRequest``); by convention
never headers, bodies or credentials.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from typing import TypeVar, overload

RecordT = TypeVar("RecordT")


class RequestLog(Sequence[RecordT]):
    """Append-only, thread-safe list of recorded requests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[RecordT] = []

    def append(self, item: RecordT) -> None:
        """Record a request once its answer is decided."""
        with self._lock:
            self._items.append(item)

    def clear(self) -> None:
        """Forget everything recorded so far."""
        with self._lock:
            self._items.clear()

    def snapshot(self) -> list[RecordT]:
        """A plain list copy, stable while the server keeps recording."""
        with self._lock:
            return list(self._items)

    @overload
    def __getitem__(self, index: int) -> RecordT: ...

    @overload
    def __getitem__(self, index: slice) -> list[RecordT]: ...

    def __getitem__(self, index: int | slice) -> RecordT | list[RecordT]:
        with self._lock:
            return self._items[index]

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def __iter__(self) -> Iterator[RecordT]:
        return iter(self.snapshot())

    def __repr__(self) -> str:
        return f"RequestLog({self.snapshot()!r})"
