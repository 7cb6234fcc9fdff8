"""``POST /api/secrets/{name}/rotate?dryRun=true`` (the plan) and ``GET /api/secrets`` (every
opted-in secret's state), through function_app's registered functions, on the twin and real
PostgreSQL.

A plan must change nothing: each test snapshots every version of every secret in the vault,
the role's password hash in PostgreSQL and every row of the sqlite journal before and after,
and checks the vault saw reads only.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import azure.functions as func
import psycopg
import pytest
from azure.keyvault.secrets import SecretClient
from psycopg import sql

from tests.integration.conftest import App, DatabaseSecret, SecretFactory
from tests.integration.test_protocol import admin_secret
from tests.support.postgres import PostgresServer
from tests.support.targets import pg_target
from twins.keyvault import KeyVaultTwin

CHECKS = ["secret", "tags", "target", "admin-login", "current-credential", "next-login",
          "keyvault-write", "consumers"]


@dataclass(frozen=True)
class Snapshot:
    vault: list[tuple[Any, ...]]
    password_hash: str
    journal: list[tuple[Any, ...]]


def snapshot(kv: SecretClient, postgres: PostgresServer, settings: dict[str, str], role: str) -> Snapshot:
    """Everything a rotation would change: Key Vault, the role's password, the journal."""
    vault = sorted((p.name, p.version, p.enabled, tuple(sorted((p.tags or {}).items())), p.updated_on,
                    p.expires_on, p.content_type)
                   for s in kv.list_properties_of_secrets()
                   for p in kv.list_properties_of_secret_versions(s.name or ""))
    with psycopg.connect(postgres.admin_conninfo) as conn:
        row = conn.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s", (role,)).fetchone()
    assert row is not None and row[0]
    path = Path(settings["ROTATOR_JOURNAL"].removeprefix("sqlite:"))
    journal: list[tuple[Any, ...]] = []
    if path.exists():
        with sqlite3.connect(path) as db:
            tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            journal = [(table, *r) for table in sorted(tables)
                       for r in db.execute(f'SELECT * FROM "{table}"')]  # noqa: S608 - names from sqlite_master
    return Snapshot(vault, str(row[0]), sorted(journal, key=repr))


def plan(app: App, twin: KeyVaultTwin, name: str, **params: str) -> tuple[int, dict[str, Any]]:
    """A dry run, checking the vault was only read while it ran."""
    before = len(twin.requests)
    answer = app.post_rotate(name, params={"dryRun": "true", **params})
    assert {r.method for r in list(twin.requests)[before:]} <= {"GET"}
    return answer


def list_secrets(app: App, params: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    """``GET /api/secrets`` as the host would call it; the body goes to the leak guard."""
    import function_app

    request = func.HttpRequest(method="GET", url="http://localhost:7071/api/secrets",
                               params=params or {}, route_params={}, body=b"")
    response = function_app.secrets(request)
    text = response.get_body().decode()
    app.said.http_bodies.append(text)
    assert response.mimetype == "application/json"
    return response.status_code, json.loads(text)


def rows(answer: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["secret"]: row for row in answer["secrets"]}


def test_a_dry_run_answers_the_plan_and_changes_nothing(
    app: App, twin: KeyVaultTwin, kv: SecretClient, postgres: PostgresServer,
    db_secret: SecretFactory, app_settings: dict[str, str],
) -> None:
    secret = db_secret()
    status, rotated = app.post_rotate(secret.name)  # so the journal has rows a plan could touch
    assert status == 200 and rotated["status"] == "succeeded"
    current = kv.get_secret(secret.name).properties.version
    before = snapshot(kv, postgres, app_settings, secret.role)
    assert before.journal

    status, body = plan(app, twin, secret.name)

    assert status == 200, body
    assert (body["vault"], body["secret"], body["version"]) == ("kv-test", secret.name, current)
    assert (body["target"], body["strategy"], body["verdict"]) == ("test-pg", "single-user", "ok")
    assert [c["check"] for c in body["checks"]] == CHECKS
    assert {c["check"]: c["status"] for c in body["checks"]}["keyvault-write"] == "pass"
    assert rotated["rotationId"] in {c["check"]: c["detail"] for c in body["checks"]}["keyvault-write"]
    assert snapshot(kv, postgres, app_settings, secret.role) == before


def test_dry_run_must_be_true_or_false(app: App, twin: KeyVaultTwin, kv: SecretClient,
                                       db_secret: SecretFactory) -> None:
    secret = db_secret()
    status, body = plan(app, twin, secret.name, dryRun="maybe")
    assert status == 400
    assert body["error"]["message"] == "'dryRun' must be true or false, not 'maybe'"
    status, body = app.post_rotate(secret.name, params={"dryRun": "false"})
    assert status == 200 and body["status"] == "succeeded"  # false means rotate


def password_changed_out_of_band(postgres: PostgresServer, kv: SecretClient,
                                 secret: DatabaseSecret) -> str:
    with psycopg.connect(postgres.admin_conninfo, autocommit=True) as conn:
        conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(
            sql.Identifier(secret.role), sql.Literal(f"Changed-By-Hand-{secret.role}")))
    return "current-credential"


def tagged_for_an_undeclared_target(postgres: PostgresServer, kv: SecretClient,
                                    secret: DatabaseSecret) -> str:
    properties = kv.get_secret(secret.name).properties
    kv.update_secret_properties(secret.name, secret.version,
                                tags={**(properties.tags or {}), "rotator-target": "nowhere-pg"})
    return "target"


@pytest.mark.parametrize("arrange", [password_changed_out_of_band, tagged_for_an_undeclared_target])
def test_a_failing_plan_is_200_with_the_failed_check_and_changes_nothing(
    app: App, twin: KeyVaultTwin, kv: SecretClient, postgres: PostgresServer,
    db_secret: SecretFactory, app_settings: dict[str, str],
    arrange: Callable[[PostgresServer, SecretClient, DatabaseSecret], str],
) -> None:
    secret = db_secret()
    failing = arrange(postgres, kv, secret)
    before = snapshot(kv, postgres, app_settings, secret.role)

    status, body = plan(app, twin, secret.name)

    assert status == 200, body
    assert body["verdict"] == "failed"
    failed = [c for c in body["checks"] if c["status"] == "fail"]
    assert [c["check"] for c in failed] == [failing]
    assert snapshot(kv, postgres, app_settings, secret.role) == before


def test_the_list_shows_opted_in_secrets_and_their_state(
    app: App, kv: SecretClient, postgres: PostgresServer, db_secret: SecretFactory,
    declare_targets: Callable[..., None],
) -> None:
    admin_secret(postgres, kv, "pg-admin-list")  # no rotator-target tag: not opted in
    declare_targets(pg_list=pg_target(postgres, admin="pg-admin-list"))
    rotated, untouched = db_secret(), db_secret()
    parked = db_secret(tags={"rotator-target": "pg-list", "rotator-strategy": "alternating-users",
                             "rotator-grace-hours": "1"})
    kv.set_secret("db-plain-value", "Plain-Value-Not-Opted-In-7")

    status, body = list_secrets(app)
    assert status == 200, body
    assert body["vaults"] == ["kv-test"]
    assert [row["secret"] for row in body["secrets"]] == sorted([rotated.name, untouched.name, parked.name])
    assert {row["state"] for row in body["secrets"]} == {"never-rotated"}
    assert rows(body)[parked.name]["target"] == "pg-list"
    assert rows(body)[rotated.name]["kind"] == "postgresql"
    assert rows(body)[rotated.name]["strategy"] == "single-user"

    assert app.post_rotate(rotated.name)[1]["status"] == "succeeded"
    status, waiting = app.post_rotate(parked.name)
    assert status == 200 and waiting["status"] == "awaiting-retirement"

    status, body = list_secrets(app, {"vault": "kv-test"})
    assert status == 200, body
    pending = f"{rotated.name}-rotator-pending"  # in the vault (disabled), never in the list
    assert [p.enabled for p in kv.list_properties_of_secret_versions(pending)] == [False]
    assert [row["secret"] for row in body["secrets"]] == sorted([rotated.name, untouched.name, parked.name])
    last = rows(body)[rotated.name]
    assert last["state"] == "succeeded" and last["openRotation"] is None
    assert last["lastRotation"]["status"] == "succeeded" and last["lastRotation"]["error"] is None
    created = kv.get_secret(rotated.name).properties.created_on
    assert created is not None and last["versionCreated"] == created.isoformat(timespec="seconds")
    assert rows(body)[untouched.name]["state"] == "never-rotated"
    open_ = rows(body)[parked.name]
    assert open_["state"] == "awaiting-retirement" and open_["lastRotation"] is None
    assert open_["openRotation"]["rotationId"] == waiting["rotationId"]
    assert open_["openRotation"]["status"] == "awaiting-retirement"
    assert open_["openRotation"]["retireAfter"] == waiting["retireAfter"]


def test_an_unknown_vault_is_400(app: App, db_secret: SecretFactory) -> None:
    db_secret()
    status, body = list_secrets(app, {"vault": "unknown"})
    assert status == 400
    assert body["error"]["message"] == "vault 'unknown' is not configured (known: kv-test)"
