"""The ``mysql`` target through the whole protocol: the Functions app, the Key Vault twin and
a real MariaDB over verified TLS, for both strategies MariaDB supports."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pymysql
from azure.keyvault.secrets import SecretClient

from tests.integration.conftest import App, near_expiry, versions_of
from tests.support.mariadb import MariaDBServer
from tests.support.targets import mysql_target
from twins.keyvault import KeyVaultTwin

ADMIN_PASSWORD = "E2E-Admin-Passw0rd"


def store(kv: SecretClient, name: str, user: str, password: str, target: str) -> str:
    stored = kv.set_secret(name, json.dumps({"username": user, "password": password}),
                           content_type="application/json",
                           tags={"rotator-target": target, "rotator-grace-hours": "0"},
                           expires_on=datetime.now(UTC) + timedelta(days=10))
    return stored.properties.version or ""


def as_root(mariadb: MariaDBServer, statement: str, *args: object) -> None:
    with mariadb.admin() as conn, conn.cursor() as cur:
        cur.execute(statement, args or None)


def current(kv: SecretClient, name: str) -> tuple[str, str]:
    value = json.loads(kv.get_secret(name).value or "{}")
    return value["username"], value["password"]


def test_single_user_rotates_its_own_password_through_the_app(
    app: App, twin: KeyVaultTwin, kv: SecretClient, mariadb: MariaDBServer,
    declare_targets: Callable[..., None],
) -> None:
    mariadb.create_user("e2e_self", "First-E2E-Passw0rd")
    declare_targets(my_self=mysql_target(mariadb, strategies=["single-user"]))
    version = store(kv, "db-e2e-self", "e2e_self", "First-E2E-Passw0rd", "my-self")
    app.deliver(near_expiry(twin, "db-e2e-self", version))
    user, password = current(kv, "db-e2e-self")
    assert user == "e2e_self" and len(versions_of(kv, "db-e2e-self")) == 2
    assert mariadb.can_login(user, password)
    assert not mariadb.can_login("e2e_self", "First-E2E-Passw0rd")
    status, body = app.get("secrets/db-e2e-self/rotations", {"name": "db-e2e-self"})
    assert status == 200 and body["rotations"][0]["status"] == "succeeded"
    assert body["rotations"][0]["target"] == "my-self"
    assert password not in mariadb.general_log() and password not in mariadb.binlog()


def test_alternating_users_switch_and_lock_the_previous_account_through_the_app(
    app: App, twin: KeyVaultTwin, kv: SecretClient, mariadb: MariaDBServer,
    declare_targets: Callable[..., None],
) -> None:
    mariadb.create_user("e2e_alt", "First-Alt-Passw0rd")
    mariadb.create_user("e2e_alt_admin", ADMIN_PASSWORD, privileges=("CREATE USER",))
    as_root(mariadb, "GRANT SELECT ON mysql.* TO %s@'%%'", "e2e_alt_admin")
    as_root(mariadb, "CREATE DATABASE IF NOT EXISTS e2e_alt_db")
    as_root(mariadb, "GRANT SELECT ON e2e_alt_db.* TO %s@'%%'", "e2e_alt")
    as_root(mariadb, "GRANT SELECT ON e2e_alt_db.* TO %s@'%%' WITH GRANT OPTION", "e2e_alt_admin")
    kv.set_secret("mysql-admin-e2e", json.dumps({"username": "e2e_alt_admin",
                                                 "password": ADMIN_PASSWORD}),
                  content_type="application/json")
    declare_targets(my_alt=mysql_target(mariadb, admin="mysql-admin-e2e",
                                        strategies=["alternating-users"]))
    version = store(kv, "db-e2e-alt", "e2e_alt", "First-Alt-Passw0rd", "my-alt")
    app.deliver(near_expiry(twin, "db-e2e-alt", version))
    user, password = current(kv, "db-e2e-alt")
    assert user == "e2e_alt_clone" and mariadb.can_login(user, password)
    try:
        mariadb.connect("e2e_alt", "First-Alt-Passw0rd").close()
        raise AssertionError("the previous account should be locked")
    except pymysql.err.OperationalError as refused:
        assert refused.args[0] == 4151  # retired: the account is locked
    with mariadb.connect(user, password) as conn, conn.cursor() as cur:
        cur.execute("SHOW TABLES FROM e2e_alt_db")  # the clone got the base's grants

    second = kv.get_secret("db-e2e-alt").properties.version or ""
    app.deliver(near_expiry(twin, "db-e2e-alt", second))
    back_user, back_password = current(kv, "db-e2e-alt")
    assert back_user == "e2e_alt" and mariadb.can_login(back_user, back_password)
    _status, body = app.get("secrets/db-e2e-alt/rotations", {"name": "db-e2e-alt"})
    assert [r["status"] for r in body["rotations"]] == ["succeeded", "succeeded"]
