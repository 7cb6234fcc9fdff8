"""Process entry points for the cross-process races (spawned, so kept light to import)."""

from __future__ import annotations

from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path

from rotation.journal import JournalConflict, SqliteJournal
from tests.journal.records import NOW, TTL, record


def begin(path: Path, barrier: Barrier, rotation_id: str, results: Queue[tuple[str, str]]) -> None:
    journal = SqliteJournal(path)
    barrier.wait()
    outcome = journal.begin(record(rotation_id=rotation_id), now=NOW)
    results.put((rotation_id, type(outcome).__name__))


def claim(path: Path, barrier: Barrier, rotation_id: str, owner: str,
          results: Queue[tuple[str, str]]) -> None:
    journal = SqliteJournal(path)
    barrier.wait()
    try:
        journal.claim(rotation_id, owner=owner, now=NOW + 2 * TTL, ttl=TTL)
    except JournalConflict as exc:
        results.put((owner, type(exc).__name__))
    else:
        results.put((owner, "claimed"))


def hold_write_lock(path: Path, ready: Barrier) -> None:
    """Take SQLite's write lock mid-transaction and wait to be killed."""
    import sqlite3
    import time

    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("UPDATE journal SET data = data WHERE 1 = 1")
    ready.wait()
    time.sleep(60)
