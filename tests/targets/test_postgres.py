"""The PostgreSQL target against a real server with password authentication on."""

from __future__ import annotations

import psycopg
import pytest

from rotation.errors import AccessDenied, SecretNotRotatable, TransientError, VerificationFailed
from rotation.passwords import generate_password
from rotation.secret_value import Credential, SecretValue
from rotation.targets.postgres import PostgresTarget
from tests.support.postgres import PostgresServer, free_port, server_log
from tests.support.targets import pg_context


def target_for(postgres: PostgresServer, admin: Credential | None = None, *,
               address: str | None = None) -> PostgresTarget:
    return PostgresTarget(pg_context(postgres, admin=admin, address=address))


def cred(user: str, password: str) -> Credential:
    return Credential(user, SecretValue(password))


def test_role_changes_its_own_password_and_plaintext_never_reaches_the_server(
    postgres: PostgresServer,
) -> None:
    postgres.create_role("self_rotating", "old-Passw0rd-1")
    target = target_for(postgres)
    new = Credential("self_rotating", generate_password())
    target.apply(cred("self_rotating", "old-Passw0rd-1"), new)
    target.verify(new)
    assert postgres.can_login("self_rotating", new.password.reveal())
    assert not postgres.can_login("self_rotating", "old-Passw0rd-1")
    log = server_log(postgres)
    assert "ALTER ROLE" in log and "SCRAM-SHA-256$" in log  # log_statement=all saw the statement
    assert new.password.reveal() not in log


def test_admin_changes_a_quoted_role_name(postgres: PostgresServer) -> None:
    postgres.create_role("rotator_admin", "admin-Passw0rd-1", createrole=True)
    odd_name = 'App "User"; DROP'
    postgres.create_role(odd_name, "old-Passw0rd-2")
    target = target_for(postgres, admin=cred("rotator_admin", "admin-Passw0rd-1"))
    new = Credential(odd_name, generate_password())
    # The current password is wrong on purpose: with an admin it is not needed.
    target.apply(cred(odd_name, "not-the-password"), new)
    assert postgres.can_login(odd_name, new.password.reveal())
    assert not postgres.can_login(odd_name, "old-Passw0rd-2")


def test_apply_is_a_no_op_when_the_new_password_already_works(postgres: PostgresServer) -> None:
    postgres.create_role("idempotent", "old-Passw0rd-3")
    target = target_for(postgres)
    new = Credential("idempotent", generate_password())
    target.apply(cred("idempotent", "old-Passw0rd-3"), new)
    # The old password no longer works, so a second apply could only succeed by noticing
    # that the new one already does.
    target.apply(cred("idempotent", "old-Passw0rd-3"), new)
    assert postgres.can_login("idempotent", new.password.reveal())


def test_wrong_current_password_is_access_denied_and_changes_nothing(
    postgres: PostgresServer,
) -> None:
    postgres.create_role("guarded", "old-Passw0rd-4")
    target = target_for(postgres)
    with pytest.raises(AccessDenied, match="password authentication failed") as caught:
        target.apply(cred("guarded", "wrong-Passw0rd"), Credential("guarded", generate_password()))
    assert "wrong-Passw0rd" not in str(caught.value)
    assert postgres.can_login("guarded", "old-Passw0rd-4")


def test_verify_refused_login_is_verification_failed(postgres: PostgresServer) -> None:
    postgres.create_role("verified", "old-Passw0rd-5")
    with pytest.raises(VerificationFailed, match="refused"):
        target_for(postgres).verify(cred("verified", "not-it"))


def test_unreachable_server_is_transient(postgres: PostgresServer) -> None:
    target = target_for(postgres, address=f"postgresql://127.0.0.1:{free_port()}/postgres")
    with pytest.raises(TransientError, match="unavailable"):
        target.verify(cred("anyone", "whatever-1"))


def test_missing_database_is_a_configuration_problem(postgres: PostgresServer) -> None:
    postgres.create_role("nodb_user", "old-Passw0rd-6")
    target = target_for(postgres, address=postgres.tcp_address("no_such_db"))
    with pytest.raises(SecretNotRotatable, match="does not exist"):
        target.verify(cred("nodb_user", "old-Passw0rd-6"))


def test_open_sessions_survive_the_change(postgres: PostgresServer) -> None:
    postgres.create_role("long_lived", "old-Passw0rd-7")
    with psycopg.connect(host="127.0.0.1", port=postgres.port, user="long_lived",
                         password="old-Passw0rd-7", dbname="postgres") as conn:
        target_for(postgres).apply(
            cred("long_lived", "old-Passw0rd-7"), Credential("long_lived", generate_password()))
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_a_first_apply_never_tries_the_new_password(postgres: PostgresServer) -> None:
    """The new password cannot work before apply sets it: trying it first would only leave a
    refused login in the server's log on every rotation."""
    postgres.create_role("first_try", "old-Passw0rd-8")
    refused = 'password authentication failed for user "first_try"'
    before = server_log(postgres).count(refused)
    new = Credential("first_try", generate_password())
    target_for(postgres).apply(cred("first_try", "old-Passw0rd-8"), new)
    assert postgres.can_login("first_try", new.password.reveal())
    assert server_log(postgres).count(refused) == before
