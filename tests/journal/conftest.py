"""Fixtures for the journal contract: one set of tests, every backend.

``journal_factory`` builds journals of one backend that share storage (the same dict, SQLite
file or Azure table), as separate workers would; ``journal`` is the first of them.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rotation.journal import Journal, MemoryJournal, SqliteJournal

JournalFactory = Callable[[], Journal]
BACKENDS = ("memory", "sqlite", "table")


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def journal_factory(backend: str, tmp_path: Path,
                    request: pytest.FixtureRequest) -> Iterator[JournalFactory]:
    made: list[Journal] = []
    if backend == "memory":
        shared = MemoryJournal()

        def factory() -> Journal:
            return shared
    elif backend == "sqlite":
        path = tmp_path / "journal.db"

        def factory() -> Journal:
            return SqliteJournal(path)
    else:
        from rotation.journal.tables import TableJournal

        connection_string = request.getfixturevalue("azurite")
        table = "t" + uuid.uuid4().hex[:16]

        def factory() -> Journal:
            journal = TableJournal(connection_string, table_name=table)
            made.append(journal)
            return journal
    yield factory
    for journal in made:
        journal.shutdown()


@pytest.fixture
def journal(journal_factory: JournalFactory) -> Journal:
    return journal_factory()
