"""A journal in one SQLite file, shared by threads and processes on one machine.

One table ``journal(partition, row, data, etag)``: ``data`` is the row's JSON, ``etag`` a
per-row counter. Each transaction runs in ``BEGIN IMMEDIATE`` (it takes the write lock
before reading, so two writers never interleave), the file is in WAL mode with
``synchronous=FULL``, and every call opens its own connection, so a forked or killed process
(SIGKILL included) never leaves another holding a broken handle: SQLite rolls back what a
dead process left half done. A writer waits up to ``busy_timeout`` for the lock.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from rotation.journal.base import Insert, Journal, Operation, StorageConflict, StoredRow
from rotation.journal.codec import RowData
from rotation.journal.errors import JournalUnavailable

_SCHEMA = """
CREATE TABLE IF NOT EXISTS journal (
    partition TEXT NOT NULL,
    row       TEXT NOT NULL,
    data      TEXT NOT NULL,
    etag      INTEGER NOT NULL,
    PRIMARY KEY (partition, row)
) WITHOUT ROWID
"""

#: Insert a row unless it exists; answers its etag (1) when it was inserted, nothing when not.
_INSERT = ("INSERT INTO journal (partition, row, data, etag) VALUES (?, ?, ?, 1) "
           "ON CONFLICT DO NOTHING RETURNING etag")


class SqliteJournal(Journal):
    """The journal in the SQLite database file at ``path`` (created on first use)."""

    def __init__(self, path: str | Path, *, busy_timeout: float = 30.0) -> None:
        self.path = Path(path)
        self._busy_timeout = busy_timeout
        self._ready = False
        self._ready_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SqliteJournal({str(self.path)!r})"

    def _get(self, partition: str, row: str) -> StoredRow | None:
        with self._connection() as conn:
            found = conn.execute(
                "SELECT data, etag FROM journal WHERE partition = ? AND row = ?", (partition, row)
            ).fetchone()
        return None if found is None else StoredRow(partition, row, json.loads(found[0]), str(found[1]))

    def _transact(self, partition: str, ops: Sequence[Operation]) -> dict[str, str]:
        etags: dict[str, str] = {}
        with self._transaction() as conn:
            for op in ops:
                data = _json(op.data)
                if isinstance(op, Insert):
                    found = conn.execute(_INSERT, (partition, op.row, data)).fetchone()
                else:
                    found = conn.execute(
                        "UPDATE journal SET data = ?, etag = etag + 1 "
                        "WHERE partition = ? AND row = ? AND etag = ? RETURNING etag",
                        (data, partition, op.row, _int_etag(op.etag)),
                    ).fetchone()
                if found is None:
                    raise StorageConflict(f"{partition}/{op.row} exists or changed")
                etags[op.row] = str(found[0])
        return etags

    def _insert_each(self, rows: Sequence[tuple[str, str, RowData]]) -> list[bool]:
        """Every insert in one transaction (one fsync rather than one per row); a row that
        exists is skipped (``ON CONFLICT DO NOTHING``) and answered False."""
        with self._transaction() as conn:
            return [conn.execute(_INSERT, (partition, row, _json(data))).fetchone() is not None
                    for partition, row, data in rows]

    def _query(self, partition: str | None, row_prefix: str) -> list[StoredRow]:
        upper = row_prefix[:-1] + chr(ord(row_prefix[-1]) + 1)
        sql = "SELECT partition, row, data, etag FROM journal WHERE row >= ? AND row < ?"
        params: tuple[str, ...] = (row_prefix, upper)
        if partition is not None:
            sql += " AND partition = ?"
            params += (partition,)
        with self._connection() as conn:
            found = conn.execute(sql + " ORDER BY partition, row", params).fetchall()
        return [StoredRow(p, r, json.loads(d), str(e)) for p, r, d, e in found]

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """A connection inside ``BEGIN IMMEDIATE``: committed when the body returns, rolled
        back when it raises."""
        with self._connection() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        """A fresh connection in autocommit mode (transactions are explicit), closed after."""
        try:
            if not self._ready:
                self._prepare()
            conn = self._connect()
            try:
                yield conn
            finally:
                conn.close()
        except sqlite3.OperationalError as exc:
            raise _translate(self.path, exc) from exc

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=self._busy_timeout, isolation_level=None)
        conn.execute("PRAGMA synchronous = FULL")
        return conn

    def _prepare(self) -> None:
        """Create the file, switch it to WAL and create the table, once per instance."""
        with self._ready_lock:
            if self._ready:
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            deadline = time.monotonic() + self._busy_timeout
            while True:
                conn = self._connect()
                try:
                    conn.execute("PRAGMA journal_mode = WAL")
                    conn.execute(_SCHEMA)
                    break
                except sqlite3.OperationalError as exc:
                    # Switching to WAL needs the file to itself and SQLite's busy handler does
                    # not wait for that: two processes opening a new journal at once collide.
                    if "locked" not in str(exc) or time.monotonic() > deadline:
                        raise
                finally:
                    conn.close()
                time.sleep(0.05)
            self._ready = True


def _json(data: RowData) -> str:
    return json.dumps(data, separators=(",", ":"))


def _int_etag(etag: str) -> int:
    try:
        return int(etag)
    except ValueError:
        return -1  # not one of ours: can never match


def _translate(path: Path, exc: sqlite3.OperationalError) -> JournalUnavailable:
    """The one place SQLite's errors become the project's: locked, busy, unreadable → transient."""
    return JournalUnavailable(f"SQLite journal {path} unavailable: {exc}", retry_after=1.0)
