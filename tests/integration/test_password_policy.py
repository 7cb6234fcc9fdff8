"""Password presets through the whole app: the target's policy, a secret's tags over it, and
bad tags refused before anything changes."""

from __future__ import annotations

import json
import string
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from azure.keyvault.secrets import SecretClient

from rotation.passwords import PRESETS
from tests.integration.conftest import App, SecretFactory, near_expiry, versions_of
from tests.support.mariadb import MariaDBServer
from tests.support.postgres import PostgresServer
from tests.support.targets import mysql_target, pg_target
from twins.keyvault import KeyVaultTwin


def current(kv: SecretClient, name: str) -> tuple[str, str, dict[str, str]]:
    secret = kv.get_secret(name)
    value = json.loads(secret.value or "{}")
    return value["username"], value["password"], dict(secret.properties.tags or {})


def follows(password: str, preset: str, length: int) -> bool:
    return (len(password) == length and set(password) <= set(PRESETS[preset].alphabet)
            and password[0] in string.ascii_letters)


def test_tags_choose_the_preset_and_length_and_later_rotations_keep_them(
    app: App, kv: SecretClient, postgres: PostgresServer, db_secret: SecretFactory,
) -> None:
    secret = db_secret(tags={"rotator-password-alphabet": "alphanumeric",
                             "rotator-password-length": "24"})
    for rotation in range(2):
        status, body = app.post_rotate(secret.name)
        assert status == 200, body
        user, password, tags = current(kv, secret.name)
        assert follows(password, "alphanumeric", 24), f"rotation {rotation}"
        assert postgres.can_login(user, password)
        assert tags["rotator-password-alphabet"] == "alphanumeric"
        assert tags["rotator-password-length"] == "24"


def test_untagged_secrets_get_the_targets_policy_else_the_kinds_default(
    app: App, kv: SecretClient, postgres: PostgresServer, db_secret: SecretFactory,
    declare_targets: Callable[..., None],
) -> None:
    declare_targets(short=pg_target(postgres, secrets=["db-short-*"]) | {
        "password": {"preset": "alphanumeric", "length": 20}})
    plain = db_secret()
    short = db_secret(role="short_policy", tags={"rotator-target": "short"})
    # db_secret names the secret after the role: db-short-policy matches db-short-*.
    for secret, preset, length in ((plain, "url-safe", 40), (short, "alphanumeric", 20)):
        status, body = app.post_rotate(secret.name)
        assert status == 200, body
        user, password, _ = current(kv, secret.name)
        assert follows(password, preset, length), secret.name
        assert postgres.can_login(user, password)


def test_a_mysql_target_rotates_to_its_preset_and_the_login_works(
    app: App, twin: KeyVaultTwin, kv: SecretClient, mariadb: MariaDBServer,
    declare_targets: Callable[..., None],
) -> None:
    mariadb.create_user("preset_e2e", "First-Preset-Passw0rd")
    declare_targets(my_preset=mysql_target(mariadb, strategies=["single-user"]))
    stored = kv.set_secret("db-preset-e2e", json.dumps({"username": "preset_e2e",
                                                        "password": "First-Preset-Passw0rd"}),
                           content_type="application/json",
                           tags={"rotator-target": "my-preset", "rotator-password-length": "128"},
                           expires_on=datetime.now(UTC) + timedelta(days=10))
    app.deliver(near_expiry(twin, "db-preset-e2e", stored.properties.version or ""))
    user, password, _ = current(kv, "db-preset-e2e")
    assert follows(password, "url-safe", 128)
    assert mariadb.can_login(user, password)


def test_bad_password_tags_are_refused_before_anything_changes(
    app: App, kv: SecretClient, postgres: PostgresServer, db_secret: SecretFactory,
) -> None:
    secret = db_secret(tags={"rotator-password-alphabet": "printable",
                             "rotator-password-length": "8"})
    status, body = app.post_rotate(secret.name)
    assert status == 409, body
    message = body["error"]["message"]
    assert "rotator-password-alphabet='printable' names no password preset; presets: " \
           "url-safe, alphanumeric" in message
    assert "rotator-password-length='8' is not a whole number of characters in 16..128" in message
    assert versions_of(kv, secret.name) == [secret.version]
    assert postgres.can_login(secret.role, secret.password)
