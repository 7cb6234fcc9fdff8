"""An in-memory journal: dicts and a lock. For the core's unit tests and ``memory:``."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Sequence

from rotation.journal.base import Insert, Journal, Operation, StorageConflict, StoredRow


class MemoryJournal(Journal):
    """Rows in a dict; every primitive holds one lock, so ``_transact`` is atomic."""

    def __init__(self) -> None:
        self._rows: dict[tuple[str, str], StoredRow] = {}
        self._lock = threading.Lock()
        self._etags = itertools.count(1)

    def __repr__(self) -> str:
        return f"MemoryJournal(rows={len(self._rows)})"

    def _get(self, partition: str, row: str) -> StoredRow | None:
        with self._lock:
            return self._rows.get((partition, row))

    def _transact(self, partition: str, ops: Sequence[Operation]) -> dict[str, str]:
        with self._lock:
            for op in ops:
                stored = self._rows.get((partition, op.row))
                if isinstance(op, Insert):
                    if stored is not None:
                        raise StorageConflict(f"{partition}/{op.row} exists")
                elif stored is None or stored.etag != op.etag:
                    raise StorageConflict(f"{partition}/{op.row} changed")
            etags: dict[str, str] = {}
            for op in ops:
                etag = str(next(self._etags))
                self._rows[(partition, op.row)] = StoredRow(partition, op.row, dict(op.data), etag)
                etags[op.row] = etag
            return etags

    def _query(self, partition: str | None, row_prefix: str) -> list[StoredRow]:
        with self._lock:
            return sorted(
                (row for (p, r), row in self._rows.items()
                 if (partition is None or p == partition) and r.startswith(row_prefix)),
                key=lambda row: (row.partition, row.row),
            )
