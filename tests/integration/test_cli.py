"""``akv-rotator`` as an operator runs it: the installed console script, in a subprocess, in
direct mode (the core with the app's settings) against the Key Vault twin and PostgreSQL.

Each command's table and ``--output json`` are checked for the same facts, and its exit
code for the meaning :mod:`rotation.cli.exits` documents. Whatever the CLI prints goes
through the ``app`` fixture's leak guard with the HTTP bodies.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from azure.keyvault.secrets import SecretClient

from tests.integration.conftest import App, DatabaseSecret, SecretFactory
from tests.integration.test_protocol import admin_secret
from tests.support.cli import Ran, run_cli
from tests.support.postgres import PostgresServer
from tests.support.targets import pg_target


@pytest.fixture
def cli(app: App) -> Callable[..., Ran]:
    """Run the console script with the app's settings (they are in os.environ)."""

    def run(*args: str, env: dict[str, str] | None = None) -> Ran:
        return run_cli(args, app.said.http_bodies, env)

    return run


def versions(kv: SecretClient, name: str) -> list[tuple[Any, ...]]:
    return sorted((p.version, p.enabled, tuple(sorted((p.tags or {}).items())), p.updated_on,
                   p.expires_on) for p in kv.list_properties_of_secret_versions(name))


def password_hash(postgres: PostgresServer, role: str) -> str:
    with psycopg.connect(postgres.admin_conninfo) as conn:
        row = conn.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s", (role,)).fetchone()
    assert row is not None
    return str(row[0])


def journal_rows(settings: dict[str, str]) -> list[tuple[Any, ...]]:
    path = settings["ROTATOR_JOURNAL"].removeprefix("sqlite:")
    if not Path(path).exists():
        return []
    with sqlite3.connect(path) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return [(table, *row) for table in sorted(tables)
                for row in conn.execute(f"SELECT * FROM {table} ORDER BY 1, 2")]  # noqa: S608


def checks_of(plan: dict[str, Any]) -> dict[str, str]:
    return {c["check"] + (f"@{c['subject']}" if c.get("subject") else ""): c["status"]
            for c in plan["checks"]}


# -- plan ----------------------------------------------------------------------------------------


def test_plan_passes_for_a_sound_secret_and_the_table_says_what_the_json_says(
        cli: Callable[..., Ran], db_secret: SecretFactory) -> None:
    db = db_secret()
    as_json = cli("plan", db.name, "--output", "json")
    table = cli("plan", db.name)
    assert as_json.code == table.code == 0, as_json.err
    plan = as_json.json()["plans"][0]
    assert plan["verdict"] == "ok" and plan["version"] == db.version and plan["target"] == "test-pg"
    assert checks_of(plan) == {"secret": "pass", "tags": "pass", "target": "pass",
                               "admin-login": "skip", "current-credential": "pass",
                               "next-login": "pass", "keyvault-write": "skip", "consumers": "skip"}
    for check in plan["checks"]:
        line = next(line for line in table.out.splitlines() if line.startswith(check["check"] + " "))
        assert check["status"] in line.split()
    assert "verdict ok" in table.out and db.version in table.out


def test_plan_changes_nothing(cli: Callable[..., Ran], app: App, db_secret: SecretFactory,
                              kv: SecretClient, postgres: PostgresServer,
                              app_settings: dict[str, str]) -> None:
    db = db_secret()
    app.post_rotate(db.name)  # a journal with rows, and a version the rotator wrote
    after_rotation = kv.get_secret(db.name).properties.version
    before = (versions(kv, db.name), password_hash(postgres, db.role), journal_rows(app_settings))
    assert before[2], "the journal has the rotation"
    ran = cli("plan", db.name, "-o", "json")
    assert ran.code == 0, ran.err
    plan = ran.json()["plans"][0]
    assert checks_of(plan)["keyvault-write"] == "pass", "the rotator wrote the current version"
    assert plan["version"] == after_rotation
    assert (versions(kv, db.name), password_hash(postgres, db.role),
            journal_rows(app_settings)) == before


def test_plan_fails_when_the_current_credential_no_longer_logs_in(
        cli: Callable[..., Ran], db_secret: SecretFactory, postgres: PostgresServer,
        kv: SecretClient) -> None:
    db = db_secret()
    postgres.create_role(db.role, "Changed-Out-Of-Band-1")  # drift: Key Vault holds a stale one
    before = versions(kv, db.name)
    ran = cli("plan", db.name, "-o", "json")
    assert ran.code == 1
    assert checks_of(ran.json()["plans"][0])["current-credential"] == "fail"
    assert versions(kv, db.name) == before


def test_plan_warns_with_exit_3_when_privilege_parity_differs_and_the_target_only_warns(
        cli: Callable[..., Ran], db_secret: SecretFactory, postgres: PostgresServer,
        kv: SecretClient, declare_targets: Callable[..., None]) -> None:
    admin_secret(postgres, kv, "pg-admin-cli")
    declare_targets(pg_warn=pg_target(postgres, admin="pg-admin-cli", strategies=["alternating-users"],
                                      parity="warn"))
    db = db_secret(tags={"rotator-target": "pg-warn"})
    with psycopg.connect(postgres.admin_conninfo, autocommit=True) as conn:
        # a role setting the clone would not be created with (pg_parity names it)
        conn.execute(f'ALTER ROLE "{db.role}" SET search_path = app, public')
    ran = cli("plan", db.name, "-o", "json")
    assert ran.code == 3, ran.out + ran.err
    plan = ran.json()["plans"][0]
    assert plan["verdict"] == "attention"
    parity = next(c for c in plan["checks"] if c["check"] == "next-login")
    assert parity["status"] == "warn" and "search_path=app, public" in parity["detail"]
    assert checks_of(plan)["admin-login"] == "pass"


def test_plan_without_names_takes_every_secret_due_within_the_days(
        cli: Callable[..., Ran], db_secret: SecretFactory) -> None:
    soon = db_secret(expires_in_days=5)
    later = db_secret(expires_in_days=25)
    due_in_10 = cli("plan", "--days", "10", "-o", "json")
    assert due_in_10.code == 0, due_in_10.err
    assert [p["secret"] for p in due_in_10.json()["plans"]] == [soon.name]
    due_in_30 = cli("plan", "-o", "json")
    assert sorted(p["secret"] for p in due_in_30.json()["plans"]) == sorted([soon.name, later.name])
    nothing = cli("plan", "--days", "1")
    assert nothing.code == 0 and "no opted-in secret expires within 1 days" in nothing.out


def test_plan_of_a_missing_secret_or_an_unknown_target_fails(
        cli: Callable[..., Ran], db_secret: SecretFactory) -> None:
    missing = cli("plan", "no-such-secret", "-o", "json")
    assert missing.code == 1 and checks_of(missing.json()["plans"][0]) == {"secret": "fail"}
    db = db_secret(tags={"rotator-target": "not-declared"})
    unknown = cli("plan", db.name, "-o", "json")
    assert unknown.code == 1
    target = next(c for c in unknown.json()["plans"][0]["checks"] if c["check"] == "target")
    assert target["status"] == "fail" and "not-declared" in target["detail"]


# -- status ---------------------------------------------------------------------------------------


def test_status_lists_opted_in_secrets_with_their_last_rotation(
        cli: Callable[..., Ran], app: App, db_secret: SecretFactory, kv: SecretClient) -> None:
    rotated = db_secret()
    untouched = db_secret(expires_in_days=12)
    kv.set_secret("not-opted-in", "plain")
    _, record = app.post_rotate(rotated.name)
    as_json = cli("status", "-o", "json")
    table = cli("status")
    assert as_json.code == table.code == 0, as_json.err
    rows = {row["secret"]: row for row in as_json.json()["secrets"]}
    assert set(rows) == {rotated.name, untouched.name}
    assert rows[rotated.name]["state"] == "succeeded"
    assert rows[rotated.name]["lastRotation"]["rotationId"] == record["rotationId"]
    assert rows[untouched.name]["state"] == "never-rotated"
    assert rows[untouched.name]["expiresInDays"] == pytest.approx(12, abs=0.1)
    assert {rows[n]["kind"] for n in rows} == {"postgresql"}
    for name, row in rows.items():
        line = next(line for line in table.out.splitlines() if name in line)
        assert row["state"] in line and "postgresql" in line and "single-user" in line
    assert "not-opted-in" not in table.out


def test_status_needs_attention_for_a_failed_rotation(
        cli: Callable[..., Ran], app: App, db_secret: SecretFactory,
        postgres: PostgresServer) -> None:
    db = db_secret()
    postgres.create_role(db.role, "Changed-Out-Of-Band-2")
    status, _ = app.post_rotate(db.name)
    assert status == 502
    ran = cli("status", "-o", "json")
    assert ran.code == 3
    assert [row["state"] for row in ran.json()["secrets"]] == ["failed"]


# -- rotate, history, show, retry -----------------------------------------------------------------


def test_rotate_changes_the_credential_and_history_and_show_tell_it(
        cli: Callable[..., Ran], db_secret: SecretFactory, kv: SecretClient,
        postgres: PostgresServer) -> None:
    db = db_secret()
    ran = cli("rotate", db.name, "--reason", "CHG-1234", "-o", "json")
    assert ran.code == 0, ran.err
    record = ran.json()
    assert record["status"] == "succeeded" and record["oldVersion"] == db.version
    assert record["trigger"]["source"] == "cli" and record["trigger"]["reference"].endswith(": CHG-1234")
    current = kv.get_secret(db.name)
    assert current.properties.version == record["newVersion"]
    assert postgres.can_login(db.role, json.loads(current.value or "")["password"])
    assert not postgres.can_login(db.role, db.password)

    history = cli("history", db.name, "-o", "json")
    assert history.code == 0
    assert [r["rotationId"] for r in history.json()["rotations"]] == [record["rotationId"]]
    assert record["rotationId"] in cli("history", db.name).out

    shown = cli("show", record["rotationId"], "-o", "json")
    assert shown.code == 0 and shown.json()["newVersion"] == record["newVersion"]
    table = cli("show", record["rotationId"]).out
    for step in ("prepared", "applied", "verified", "promoted", "retired", "finished"):
        assert any(line.split()[:2] == [step, "done"] for line in table.splitlines()), step


def test_rotate_wait_follows_alternating_logins_through_retirement(
        cli: Callable[..., Ran], db_secret: SecretFactory, kv: SecretClient,
        postgres: PostgresServer, declare_targets: Callable[..., None]) -> None:
    admin_secret(postgres, kv, "pg-admin-wait")
    declare_targets(pg_wait=pg_target(postgres, admin="pg-admin-wait", strategies=["alternating-users"]))
    db = db_secret(tags={"rotator-target": "pg-wait", "rotator-grace-hours": "0.0005"})  # 1.8 s
    ran = cli("rotate", db.name, "--wait", "--poll", "0.5", "--timeout", "60")
    assert ran.code == 0, ran.out + ran.err
    assert "succeeded" in ran.out
    assert any(line.split()[:2] == ["retired", "done"] for line in ran.out.splitlines())
    value = json.loads(kv.get_secret(db.name).value or "")
    assert value["username"] == f"{db.role}_clone"
    assert postgres.can_login(value["username"], value["password"])
    assert not postgres.can_login(db.role, db.password), "the previous login was retired"


def test_retry_starts_a_failed_rotation_again_once_the_cause_is_fixed(
        cli: Callable[..., Ran], app: App, db_secret: SecretFactory, postgres: PostgresServer,
        kv: SecretClient) -> None:
    db = db_secret()
    postgres.create_role(db.role, "Changed-Out-Of-Band-3")
    assert cli("rotate", db.name).code == 1
    failed = cli("history", db.name, "-o", "json").json()["rotations"][0]
    assert failed["status"] == "failed"
    still = cli("retry", failed["rotationId"])
    assert still.code == 1 and "the plan still fails" in still.err
    postgres.create_role(db.role, db.password)  # the DBA puts the stored password back
    ran = cli("retry", failed["rotationId"], "-o", "json")
    assert ran.code == 0, ran.err
    again = ran.json()
    assert again["status"] == "succeeded" and again["rotationId"] != failed["rotationId"]
    assert again["trigger"]["reference"].endswith(f"retry of {failed['rotationId']}")
    assert cli("retry", again["rotationId"]).code == 2, "only a failed rotation is retried"


def test_retry_refuses_when_the_version_moved_on(
        cli: Callable[..., Ran], db_secret: SecretFactory, postgres: PostgresServer,
        kv: SecretClient) -> None:
    db = db_secret()
    postgres.create_role(db.role, "Changed-Out-Of-Band-4")
    cli("rotate", db.name)
    failed = cli("history", db.name, "-o", "json").json()["rotations"][0]
    kv.set_secret(db.name, json.dumps({"username": db.role, "password": "Changed-Out-Of-Band-4"}),
                  content_type="application/json", tags={"rotator-target": "test-pg"},
                  expires_on=datetime.now(UTC) + timedelta(days=20))
    ran = cli("retry", failed["rotationId"])
    assert ran.code == 1 and "nothing to retry" in ran.err


# -- onboard --------------------------------------------------------------------------------------


def plain_login(postgres: PostgresServer, kv: SecretClient, name: str) -> DatabaseSecret:
    role = "onb_" + datetime.now(UTC).strftime("%H%M%S%f")
    password = f"Onboard-Passw0rd-{role}"
    postgres.create_role(role, password)
    stored = kv.set_secret(name, json.dumps({"username": role, "password": password}),
                           content_type="application/json", tags={"owner": "team-a"})
    return DatabaseSecret(name, role, password, stored.properties.version or "")


def test_onboard_dry_run_shows_the_tags_and_writes_nothing(
        cli: Callable[..., Ran], kv: SecretClient, postgres: PostgresServer) -> None:
    db = plain_login(postgres, kv, "db-onboard-dry")
    before = versions(kv, db.name)
    ran = cli("onboard", db.name, "--target", "test-pg", "--validity-days", "60", "--dr",
              "--dry-run", "-o", "json")
    assert ran.code == 0, ran.err
    answer = ran.json()
    assert answer["tags"] == {"owner": "team-a", "rotator-target": "test-pg",
                              "rotator-validity-days": "60", "rotator-dr": "true"}
    assert answer["written"] is None and answer["plan"]["verdict"] == "ok"
    assert versions(kv, db.name) == before
    table = cli("onboard", db.name, "--target", "test-pg", "--dry-run").out
    assert "rotator-target" in table and "test-pg" in table and "tags it would write" in table


def test_onboard_writes_a_new_version_with_the_same_value_and_the_tags(
        cli: Callable[..., Ran], kv: SecretClient, postgres: PostgresServer) -> None:
    db = plain_login(postgres, kv, "db-onboard-real")
    ran = cli("onboard", db.name, "--target", "test-pg", "--expires-in-days", "40", "-o", "json")
    assert ran.code == 0, ran.err
    written = ran.json()["written"]
    current = kv.get_secret(db.name)
    assert current.properties.version == written["version"] != db.version
    assert json.loads(current.value or "") == {"username": db.role, "password": db.password}
    assert current.properties.tags == {"owner": "team-a", "rotator-target": "test-pg"}
    assert current.properties.expires_on is not None
    assert abs((current.properties.expires_on - datetime.now(UTC)).days - 40) <= 1
    assert cli("plan", db.name).code == 0, "once opted in, the plan passes"


def test_onboard_refuses_a_credential_the_target_does_not_accept(
        cli: Callable[..., Ran], kv: SecretClient, postgres: PostgresServer) -> None:
    db = plain_login(postgres, kv, "db-onboard-bad")
    postgres.create_role(db.role, "Not-What-Key-Vault-Holds-1")
    before = versions(kv, db.name)
    ran = cli("onboard", db.name, "--target", "test-pg")
    assert ran.code == 1 and "nothing written" in ran.out
    assert versions(kv, db.name) == before


def test_onboard_usage_errors_change_nothing(
        cli: Callable[..., Ran], kv: SecretClient, postgres: PostgresServer) -> None:
    db = plain_login(postgres, kv, "db-onboard-usage")
    before = versions(kv, db.name)
    undeclared = cli("onboard", db.name, "--target", "prod-db")
    assert undeclared.code == 2 and "no target 'prod-db' is declared" in undeclared.err
    elsewhere = cli("onboard", db.name, "--target", "test-pg", "--address",
                    "postgresql://db.example.com:5432/postgres")
    assert elsewhere.code == 2 and "points at postgresql://127.0.0.1" in elsewhere.err
    assert versions(kv, db.name) == before


# -- usage ----------------------------------------------------------------------------------------


def test_usage_errors_exit_2_with_what_was_wrong(cli: Callable[..., Ran], tmp_path: Path) -> None:
    assert cli("show", "not-an-id").code == 2
    unknown_vault = cli("status", "--vault", "kv-nowhere")
    assert unknown_vault.code == 2 and "kv-nowhere" in unknown_vault.err
    assert cli("rotate").code == 2 and "Missing argument" in cli("rotate").err
    broken = cli("status", env={"ROTATOR_VALIDITY_DAYS": "1"})
    assert broken.code == 2 and "ROTATOR_VALIDITY_DAYS" in broken.err
    settings = tmp_path / "local.settings.json"
    settings.write_text(json.dumps({"IsEncrypted": False, "Values": {"ROTATOR_VAULTS": ""}}))
    from_file = cli("--settings", str(settings), "status")
    assert from_file.code == 2 and "ROTATOR_VAULTS" in from_file.err
    assert cli("--help").code == 0 and "plan" in cli("--help").out


def test_python_m_rotation_cli_is_the_same_program(app: App) -> None:
    done = subprocess.run([sys.executable, "-m", "rotation.cli", "status", "-o", "json"],
                          capture_output=True, text=True, timeout=120, check=False)
    app.said.http_bodies.extend([done.stdout, done.stderr])
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["secrets"] == []


def test_status_of_a_vault_of_several_pages_reports_its_progress(
        app: App, app_settings: dict[str, str], kv: SecretClient) -> None:
    """The listing is paged (25 a page, as Key Vault does) and the journal read per opted-in
    secret; ``progress`` hears both, which is what the command's progress bar draws."""
    from rotation.cli.local import LocalBackend, load_settings

    for n in range(60):
        kv.set_secret(f"db-bulk-{n:02}", json.dumps({"username": f"u{n}", "password": "x" * 20}),
                      content_type="application/json",
                      tags={"rotator-target": "test-pg"} if n % 2 else {})
    heard: list[tuple[int, int | None]] = []
    status = LocalBackend(load_settings(None)).status(None, progress=lambda d, t: heard.append((d, t)))
    assert len(status["secrets"]) == 30
    listing = [done for done, total in heard if total is None]
    assert listing == list(range(1, 61)), "every listed secret, across three pages"
    assert [(d, t) for d, t in heard if t is not None] == [(n, 30) for n in range(1, 31)]
