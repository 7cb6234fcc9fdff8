"""The trust model, attacked as the issue did: one permission, setting tags on one's own secret.

Operator targets decide where credentials go and which admin is used; tags only select a
target. Each attack below worked against the tag-driven model: the takeover of another
team's login (by its name, by its admin's name, and through a silently created clone), the
capture of passwords by a server that asks for them in cleartext or as MD5, and rotation
of a login whose current password nobody proved. Every refusal changes nothing: no Key Vault
version, no password, no journal record.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from azure.keyvault.secrets import SecretClient

from tests.integration.conftest import App, SecretFactory, near_expiry, versions_of
from tests.support.fake_postgres import CLEARTEXT, MD5, fake_postgres
from tests.support.leaks import CapturingHandler
from tests.support.postgres import PostgresServer
from tests.support.targets import pg_target
from tests.support.telemetry import metric_points
from twins.keyvault import KeyVaultTwin

TEAM_B_ADMIN = "pg-admin-team-b"


@pytest.fixture
def team_b(postgres: PostgresServer, kv: SecretClient,
           declare_targets: Callable[..., None]) -> dict[str, str]:
    """Team B's login and admin, and the operator's target for them, as deployed."""
    postgres.create_role("team_b_admin", "TeamB-Admin-Passw0rd", createrole=True)
    postgres.create_role("team_b_app", "TeamB-App-Passw0rd")
    kv.set_secret(TEAM_B_ADMIN, json.dumps({"username": "team_b_admin",
                                            "password": "TeamB-Admin-Passw0rd"}),
                  content_type="application/json")
    declare_targets(team_b=pg_target(postgres, admin=TEAM_B_ADMIN, secrets=["team-b-*"],
                                     logins=["team_b_app", "team_b_app_clone"]))
    return {"login": "team_b_app", "password": "TeamB-App-Passw0rd"}


def attacker_secret(kv: SecretClient, name: str, username: str, **tags: str) -> str:
    stored = kv.set_secret(name, json.dumps({"username": username, "password": "guessed-Pw0"}),
                           content_type="application/json",
                           tags={"rotator-target": "team-b", **tags})
    return stored.properties.version or ""


def journal_of(app: App, secret: str) -> list[dict[str, Any]]:
    status, body = app.get(f"secrets/{secret}/rotations", {"name": secret})
    assert status == 200
    return list(body["rotations"])


def test_own_secret_tagged_with_another_teams_target_is_refused(
    app: App, kv: SecretClient, postgres: PostgresServer, team_b: dict[str, str],
    captured: CapturingHandler,
) -> None:
    version = attacker_secret(kv, "attacker-db", team_b["login"])
    before = metric_points("rotator.binding.refusals")
    status, body = app.post_rotate("attacker-db")
    assert status == 403, body
    assert body["error"]["code"] == "BindingRefused"
    assert "does not admit secret 'attacker-db'" in body["error"]["message"]
    assert postgres.can_login(team_b["login"], team_b["password"])  # untouched
    assert versions_of(kv, "attacker-db") == [version]
    assert journal_of(app, "attacker-db") == []
    refused = [r for r in captured.records() if r.get("event") == "binding refused"]
    assert refused and refused[0]["refusal"] == "secret-not-admitted"
    key = (("rotator.refusal.reason", "secret-not-admitted"), ("rotator.target", "team-b"))
    assert metric_points("rotator.binding.refusals").get(key, 0) > before.get(key, 0)


def test_naming_the_admins_own_login_is_refused(
    app: App, kv: SecretClient, postgres: PostgresServer, team_b: dict[str, str],
    declare_targets: Callable[..., None],
) -> None:
    # Even a careless operator target that admits any login never rotates its admin.
    declare_targets(team_b=pg_target(postgres, admin=TEAM_B_ADMIN, secrets=["team-b-*"],
                                     logins=["*"]))
    version = attacker_secret(kv, "team-b-mine", "team_b_admin")
    status, body = app.post_rotate("team-b-mine")
    assert status == 403, body
    assert "is the admin login of target 'team-b'" in body["error"]["message"]
    assert postgres.can_login("team_b_admin", "TeamB-Admin-Passw0rd")
    assert versions_of(kv, "team-b-mine") == [version]


def test_a_login_outside_the_targets_allowlist_is_refused(
    app: App, kv: SecretClient, postgres: PostgresServer, team_b: dict[str, str],
) -> None:
    postgres.create_role("team_c_app", "TeamC-App-Passw0rd")
    attacker_secret(kv, "team-b-other", "team_c_app")
    status, body = app.post_rotate("team-b-other")
    assert status == 403 and "does not admit login 'team_c_app'" in body["error"]["message"]
    assert postgres.can_login("team_c_app", "TeamC-App-Passw0rd")


def test_an_unproven_login_gets_no_clone_and_keeps_its_password(
    app: App, twin: KeyVaultTwin, kv: SecretClient, postgres: PostgresServer,
    team_b: dict[str, str],
) -> None:
    # A secret the target admits, naming team B's login with a password nobody proved.
    version = attacker_secret(kv, "team-b-stolen", team_b["login"],
                              **{"rotator-strategy": "alternating-users"})
    app.deliver(near_expiry(twin, "team-b-stolen", version))
    (record,) = journal_of(app, "team-b-stolen")
    assert record["status"] == "failed"
    assert "current credential does not log in as 'team_b_app'" in record["lastError"]
    assert record["pendingVersion"] is None  # refused before a pending credential existed
    with psycopg.connect(postgres.admin_conninfo) as conn:
        clone = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = 'team_b_app_clone'")
        assert clone.fetchone() is None
    assert postgres.can_login(team_b["login"], team_b["password"])
    assert versions_of(kv, "team-b-stolen") == [version]


def test_lost_password_recovery_only_where_the_operator_allows_it_and_recorded(
    app: App, kv: SecretClient, postgres: PostgresServer, team_b: dict[str, str],
    declare_targets: Callable[..., None], db_secret: SecretFactory,
) -> None:
    declare_targets(team_b=pg_target(postgres, admin=TEAM_B_ADMIN, secrets=["team-b-*"],
                                     logins=["team_b_app"], recovery=True))
    attacker_secret(kv, "team-b-recover", team_b["login"])
    status, body = app.post_rotate("team-b-recover")
    assert status == 200, body
    assert body["ownership"] == "recovery" and body["status"] == "succeeded"
    current = json.loads(kv.get_secret("team-b-recover").value or "{}")
    assert postgres.can_login(team_b["login"], current["password"])


def test_retired_address_and_admin_tags_are_refused_before_anything_changes(
    app: App, kv: SecretClient, postgres: PostgresServer, db_secret: SecretFactory,
) -> None:
    secret = db_secret(tags={"rotator-address": "postgresql://attacker.example/x",
                             "rotator-admin-secret": TEAM_B_ADMIN})
    status, body = app.post_rotate(secret.name)
    assert status == 409
    assert "tag rotator-address is no longer read" in body["error"]["message"]
    assert "tag rotator-admin-secret is no longer read" in body["error"]["message"]
    assert versions_of(kv, secret.name) == [secret.version]
    assert postgres.can_login(secret.role, secret.password)


@pytest.mark.parametrize("auth_code", [CLEARTEXT, MD5], ids=["cleartext", "md5"])
@pytest.mark.parametrize("tls", [None, {"mode": "disable"}], ids=["verify-full", "tls-off"])
def test_a_server_asking_for_a_weaker_password_exchange_gets_nothing(
    app: App, kv: SecretClient, postgres: PostgresServer, db_secret: SecretFactory,
    declare_targets: Callable[..., None], auth_code: int, tls: dict[str, str] | None,
) -> None:
    """A man in the middle (or an impostor at the target's address) refuses TLS and asks
    for the password in cleartext or as MD5: neither the current nor the admin password
    nor any new one reaches it, whether TLS is on (libpq stops at the refused TLS) or the
    operator turned it off (``require_auth=scram-sha-256`` stops at the request)."""
    with fake_postgres(auth_code) as fake:
        spec = pg_target(postgres)
        spec["address"] = fake.address
        if tls is None:
            spec["tls"] = {"mode": "verify-full"}
        else:
            spec["tls"] = tls
        declare_targets(impostor=spec)
        secret = db_secret(tags={"rotator-target": "impostor"})
        status, body = app.post_rotate(secret.name)
        assert status == 502, body
        assert "unprotected" in body["error"]["message"]
        assert fake.password_messages() == []
        assert not any(secret.password.encode() in data for data in fake.received)
        if tls is not None:
            assert fake.startups >= 1  # it got as far as asking, and was not answered
    assert versions_of(kv, secret.name) == [secret.version]
