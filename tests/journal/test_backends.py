"""What only some backends must prove: SQLite across processes, Tables errors, open_journal."""

from __future__ import annotations

import ast
import multiprocessing
import os
import signal
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ServiceRequestError,
)

from rotation.errors import AccessDenied, ConfigurationError
from rotation.journal import (
    Begun,
    JournalError,
    JournalUnavailable,
    MemoryJournal,
    RotationRecord,
    SqliteJournal,
    codec,
    open_journal,
)
from rotation.journal.base import StorageConflict
from rotation.journal.tables import TableJournal, _translate
from tests.journal import workers
from tests.journal.records import NOW, SECRET, TTL, VAULT, record

ROOT = Path(__file__).resolve().parents[2]
SPAWN = multiprocessing.get_context("spawn")


def _run_processes(targets: list[tuple[Any, tuple[Any, ...]]]) -> None:
    processes = [SPAWN.Process(target=target, args=args) for target, args in targets]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0, process.exitcode


def _drain(queue: Any, count: int) -> list[tuple[str, str]]:
    return [queue.get(timeout=10) for _ in range(count)]


# ---- SQLite: several processes on one file --------------------------------------------------

def test_sqlite_processes_beginning_at_once_end_with_exactly_one_begun(tmp_path: Path) -> None:
    path, count = tmp_path / "journal.db", 6
    SqliteJournal(path).active(VAULT, SECRET)  # create the file before the race
    barrier, results = SPAWN.Barrier(count), SPAWN.Queue()
    ids = [f"rot{i}" for i in range(count)]
    _run_processes([(workers.begin, (path, barrier, rotation_id, results)) for rotation_id in ids])
    outcomes = dict(_drain(results, count))
    assert sorted(outcomes.values()).count("Begun") == 1, outcomes
    assert set(outcomes.values()) <= {"Begun", "Duplicate", "Busy"}
    winner = next(rotation_id for rotation_id, kind in outcomes.items() if kind == "Begun")
    assert [r.rotation_id for r in SqliteJournal(path).for_secret(VAULT, SECRET)] == [winner]


def test_sqlite_processes_claiming_an_expired_lease_end_with_one_owner(tmp_path: Path) -> None:
    path, count = tmp_path / "journal.db", 4
    journal = SqliteJournal(path)
    old = journal.claim(_begun(journal), owner="dead", now=NOW, ttl=TTL)
    barrier, results = SPAWN.Barrier(count), SPAWN.Queue()
    _run_processes([(workers.claim, (path, barrier, old.rotation_id, f"w{i}", results))
                    for i in range(count)])
    outcomes = dict(_drain(results, count))
    assert sorted(outcomes.values()) == ["LeaseHeld"] * (count - 1) + ["claimed"], outcomes
    winner = next(owner for owner, kind in outcomes.items() if kind == "claimed")
    assert journal.get(old.rotation_id).lease_owner == winner  # type: ignore[union-attr]


def test_sqlite_survives_a_writer_killed_mid_transaction(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    journal = SqliteJournal(path, busy_timeout=10)
    first = _begun(journal)
    ready = SPAWN.Barrier(2)
    holder = SPAWN.Process(target=workers.hold_write_lock, args=(path, ready))
    holder.start()
    ready.wait(timeout=30)
    os.kill(holder.pid or 0, signal.SIGKILL)
    holder.join(timeout=10)
    assert holder.exitcode == -signal.SIGKILL
    claimed = journal.claim(first, owner="w2", now=NOW, ttl=TTL)
    assert journal.get(first.rotation_id) == claimed


def test_sqlite_busy_past_its_timeout_is_transient(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "journal.db"
    journal = SqliteJournal(path, busy_timeout=0.1)
    first = _begun(journal)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(JournalUnavailable) as caught:
            journal.claim(first, owner="w1", now=NOW, ttl=TTL)
        assert caught.value.retry_after is not None
        assert isinstance(caught.value.__cause__, sqlite3.OperationalError)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()


def test_sqlite_creates_missing_directories(tmp_path: Path) -> None:
    journal = SqliteJournal(tmp_path / "a" / "b" / "journal.db")
    assert journal.active(VAULT, SECRET) is None
    assert (tmp_path / "a" / "b" / "journal.db").exists()


def _begun(journal: Any) -> RotationRecord:
    outcome = journal.begin(record(), now=NOW)
    assert isinstance(outcome, Begun)
    return outcome.record


# ---- Azure Tables ---------------------------------------------------------------------------

def test_table_storage_unreachable_is_transient() -> None:
    journal = TableJournal(
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;"
        "TableEndpoint=http://127.0.0.1:9/devstoreaccount1;",  # discard port: refused
        retry_total=0, connection_timeout=2,
    )
    with pytest.raises(JournalUnavailable) as caught:
        journal.active(VAULT, SECRET)
    assert isinstance(caught.value.__cause__, ServiceRequestError)
    assert "a2V5" not in str(caught.value) and "a2V5" not in repr(journal)


class _Response:
    def __init__(self, status: int, headers: dict[str, str] | None = None) -> None:
        self.status_code = status
        self.reason = "test"
        self.headers = headers or {}
        self.request = None

    def text(self, encoding: str | None = None) -> str:
        return ""


@pytest.mark.parametrize(("error", "expected", "retry_after"), [
    (HttpResponseError(response=_Response(429, {"Retry-After": "7"})), JournalUnavailable, 7.0),
    (HttpResponseError(response=_Response(503)), JournalUnavailable, None),
    (HttpResponseError(response=_Response(500, {"Retry-After": "soon"})), JournalUnavailable, None),
    (ServiceRequestError("refused"), JournalUnavailable, None),
    (ClientAuthenticationError(response=_Response(403)), AccessDenied, None),
    (ResourceExistsError(response=_Response(409)), StorageConflict, None),
    (ResourceModifiedError(response=_Response(412)), StorageConflict, None),
    (HttpResponseError(response=_Response(400)), JournalError, None),
])
def test_azure_errors_are_translated_in_one_place(error: Exception, expected: type,
                                                  retry_after: float | None) -> None:
    translated = _translate(error)  # type: ignore[arg-type]
    assert type(translated) is expected
    if isinstance(translated, JournalUnavailable):
        assert translated.retry_after == retry_after


def test_azure_data_tables_is_imported_by_the_tables_module_only() -> None:
    importers = set()
    for path in (ROOT / "rotation").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(n == "azure.data.tables" or n.startswith("azure.data.tables.") for n in names):
                importers.add(path.relative_to(ROOT).as_posix())
    assert importers == {"rotation/journal/tables.py"}


def test_table_name_is_checked() -> None:
    with pytest.raises(ConfigurationError):
        TableJournal("UseDevelopmentStorage=true", table_name="bad-name")


# ---- open_journal ---------------------------------------------------------------------------

def test_open_journal_builds_each_backend_without_connecting(tmp_path: Path) -> None:
    assert isinstance(open_journal("memory:"), MemoryJournal)
    sqlite = open_journal(f"sqlite:{tmp_path / 'j.db'}")
    assert isinstance(sqlite, SqliteJournal) and sqlite.path == tmp_path / "j.db"
    assert not (tmp_path / "j.db").exists()
    table = open_journal("table:UseDevelopmentStorage=true")
    assert isinstance(table, TableJournal) and table.table_name == "rotations"


def test_use_development_storage_reaches_azurite_default_port() -> None:
    journal = open_journal("table:UseDevelopmentStorage=true")
    assert isinstance(journal, TableJournal)
    client = journal._client_options  # nothing built yet; the SDK expands the string itself
    assert client["retry_total"] == 3
    from azure.data.tables import TableClient

    expanded = TableClient.from_connection_string("UseDevelopmentStorage=true", "rotations")
    assert expanded.url.startswith("http://127.0.0.1:10002/devstoreaccount1")


def test_open_journal_against_azurite(azurite: str) -> None:
    journal = open_journal("table:" + azurite)
    try:
        rec = _begun(journal)
        assert journal.get(rec.rotation_id) == rec
    finally:
        journal.shutdown()


@pytest.mark.parametrize("spec", ["", "memory", "memory:x", "sqlite:", "table:", "redis:x",
                                  "AccountKey=secretkey"])
def test_open_journal_refuses_other_specs_without_echoing_them(spec: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        open_journal(spec)
    assert "secretkey" not in str(caught.value)


def test_the_codec_knows_every_record_field() -> None:
    assert set(codec.FIELD_KINDS) == {f.name for f in fields(RotationRecord)} - {"etag"}


def test_a_malformed_row_is_a_journal_error() -> None:
    with pytest.raises(JournalError):
        codec.decode({"rotation_id": "x"}, etag="1")
    row = codec.encode(record())
    with pytest.raises(JournalError):
        codec.decode({**row, "status": "paused"}, etag="1")
    with pytest.raises(JournalError):
        codec.decode({**row, "created_at": "2026-01-01T00:00:00"}, etag="1")
    with pytest.raises(JournalError, match="format"):
        codec.decode({**row, "v": 2}, etag="1")


# ---- the Azurite helper ---------------------------------------------------------------------

def test_running_azurite_serves_and_stops_by_pid() -> None:
    from tests.support.azurite import _answers, running_azurite

    with running_azurite() as connection_string:
        port = int(connection_string.split("127.0.0.1:")[1].split("/")[0])
        assert _answers(port)
    assert not _answers(port)


def test_running_azurite_without_npm_install_says_what_to_do(tmp_path: Path) -> None:
    from tests.support.azurite import AzuriteMissing, running_azurite

    with pytest.raises(AzuriteMissing, match="npm install"), running_azurite(tmp_path / "nope"):
        pass
