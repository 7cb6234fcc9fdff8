"""The alternating-users PostgreSQL target against a real server with password authentication.

Every test uses its own base login (and its own admin), since the server is shared by the
session. The admin has ``CREATEROLE`` and ``ADMIN OPTION`` on the base, which is what
PostgreSQL 16 and later require of it (15 needs only ``CREATEROLE``).
"""

from __future__ import annotations

from dataclasses import replace

import psycopg
import pytest
from psycopg import sql

from rotation.catalogue import build_target
from rotation.errors import AccessDenied, PermanentError, SecretNotRotatable
from rotation.passwords import generate_password
from rotation.secret_value import Credential, SecretValue
from rotation.targets.base import TargetContext
from rotation.targets.postgres import PostgresAlternatingUsersTarget
from tests.support.postgres import PostgresServer, server_log
from tests.support.targets import pg_context

OLD = "base-Passw0rd-0"
ADMIN_PASSWORD = "admin-Passw0rd-A"


def cred(user: str, password: str) -> Credential:
    return Credential(user, SecretValue(password))


def context_for(postgres: PostgresServer, admin: Credential | None) -> TargetContext:
    return pg_context(postgres, "alternating-users", admin=admin)


def target_for(postgres: PostgresServer, admin: Credential | None) -> PostgresAlternatingUsersTarget:
    return PostgresAlternatingUsersTarget(context_for(postgres, admin))


def superuser(
    postgres: PostgresServer, statement: sql.SQL | sql.Composed, *params: object
) -> list[tuple[object, ...]]:
    with psycopg.connect(postgres.admin_conninfo, autocommit=True) as conn:
        cur = conn.execute(statement, params or None)
        return cur.fetchall() if cur.description else []


def query_as(postgres: PostgresServer, login: Credential, statement: str) -> list[tuple[object, ...]]:
    with psycopg.connect(host="127.0.0.1", port=postgres.port, dbname="postgres",
                         sslmode="disable", user=login.username,
                         password=login.password.reveal()) as conn:
        return conn.execute(statement).fetchall()


def setup_pair(
    postgres: PostgresServer, base: str
) -> tuple[PostgresAlternatingUsersTarget, Credential]:
    """A base login with password OLD, an admin for it, and the target; returns the base."""
    admin = cred(f"{base}_admin", ADMIN_PASSWORD)
    postgres.create_role(admin.username, ADMIN_PASSWORD, createrole=True)
    postgres.create_role(base, OLD)
    superuser(postgres, sql.SQL("GRANT {} TO {} WITH ADMIN OPTION").format(
        sql.Identifier(base), sql.Identifier(admin.username)))
    return target_for(postgres, admin), cred(base, OLD)


def rotate(target: PostgresAlternatingUsersTarget, current: Credential) -> Credential:
    new = Credential(target.next_username(current), generate_password())
    target.apply(current, new)
    target.verify(new)
    return new


def is_member(postgres: PostgresServer, member: str, group: str) -> bool:
    rows = superuser(postgres, sql.SQL("SELECT pg_has_role(%s, %s, 'MEMBER')"), member, group)
    return bool(rows[0][0])


def role_exists(postgres: PostgresServer, name: str) -> bool:
    return bool(superuser(postgres, sql.SQL("SELECT 1 FROM pg_roles WHERE rolname = %s"), name))


def test_first_rotation_creates_a_clone_with_the_base_privileges(postgres: PostgresServer) -> None:
    target, base = setup_pair(postgres, "alt_first")
    superuser(postgres, sql.SQL("CREATE TABLE alt_first_data (v int)"))
    superuser(postgres, sql.SQL("INSERT INTO alt_first_data VALUES (42)"))
    superuser(postgres, sql.SQL("GRANT SELECT ON alt_first_data TO alt_first"))

    clone = rotate(target, base)

    assert clone.username == "alt_first_clone"
    assert postgres.can_login("alt_first_clone", clone.password.reveal())
    assert query_as(postgres, clone, "SELECT v FROM alt_first_data") == [(42,)]
    # Through membership, not a copied grant: the table's ACL names only the base.
    acl = superuser(postgres, sql.SQL("SELECT relacl::text FROM pg_class WHERE relname = %s"),
                    "alt_first_data")[0][0]
    assert isinstance(acl, str)
    assert "alt_first_clone" not in acl
    assert is_member(postgres, "alt_first_clone", "alt_first")
    # The secret's previous login is untouched until it is retired.
    assert postgres.can_login("alt_first", OLD)
    assert query_as(postgres, base, "SELECT current_user") == [("alt_first",)]


def test_apply_sends_only_a_verifier_and_is_a_no_op_once_the_new_password_works(
    postgres: PostgresServer,
) -> None:
    target, base = setup_pair(postgres, "alt_noop")
    clone = rotate(target, base)
    # An admin with a wrong password would be refused, so this apply can only succeed by
    # noticing that the clone's new password already works.
    broken_admin = target_for(postgres, cred("alt_noop_admin", "wrong-Passw0rd"))
    broken_admin.apply(base, clone)
    assert postgres.can_login("alt_noop_clone", clone.password.reveal())
    log = server_log(postgres)
    assert 'CREATE ROLE "alt_noop_clone" WITH LOGIN PASSWORD \'SCRAM-SHA-256$' in log
    assert clone.password.reveal() not in log


def test_a_first_apply_never_tries_the_new_login(postgres: PostgresServer) -> None:
    """Before apply the clone has no password (or no role): logging in as it first would only
    leave a refusal in the server's log on every rotation."""
    target, base = setup_pair(postgres, "alt_notry")
    log_before = len(server_log(postgres))
    clone = rotate(target, base)
    said = server_log(postgres)[log_before:]
    assert 'password authentication failed for user "alt_notry_clone"' not in said
    assert 'role "alt_notry_clone" does not exist' not in said
    again = rotate(target, clone)  # back to the base, whose password OLD is about to change
    said = server_log(postgres)[log_before:]
    assert 'password authentication failed for user "alt_notry"' not in said
    assert postgres.can_login("alt_notry", again.password.reveal())


def test_retire_ends_the_previous_password_and_keeps_the_current_login(
    postgres: PostgresServer,
) -> None:
    target, base = setup_pair(postgres, "alt_retire")
    clone = rotate(target, base)

    target.retire(base, clone)

    assert not postgres.can_login("alt_retire", OLD)
    assert postgres.can_login("alt_retire_clone", clone.password.reveal())
    assert role_exists(postgres, "alt_retire")  # kept, for its objects and the next rotation
    target.retire(base, clone)  # again: nothing left to do
    assert postgres.can_login("alt_retire_clone", clone.password.reveal())


def test_retire_refuses_the_current_login_and_changes_nothing(postgres: PostgresServer) -> None:
    target, base = setup_pair(postgres, "alt_guard")
    clone = rotate(target, base)

    with pytest.raises(PermanentError, match="holds now"):
        target.retire(clone, clone)
    with pytest.raises(PermanentError, match="not an alternating pair"):
        target.retire(cred("alt_guard_admin", ADMIN_PASSWORD), clone)

    assert postgres.can_login("alt_guard_clone", clone.password.reveal())
    assert postgres.can_login("alt_guard", OLD)
    assert postgres.can_login("alt_guard_admin", ADMIN_PASSWORD)


def test_second_rotation_alternates_back_to_the_base(postgres: PostgresServer) -> None:
    target, base = setup_pair(postgres, "alt_back")
    clone = rotate(target, base)
    target.retire(base, clone)

    back = rotate(target, clone)

    assert back.username == "alt_back"
    assert postgres.can_login("alt_back", back.password.reveal())
    assert postgres.can_login("alt_back_clone", clone.password.reveal())  # until retired
    target.retire(clone, back)
    assert not postgres.can_login("alt_back_clone", clone.password.reveal())
    assert postgres.can_login("alt_back", back.password.reveal())

    # A third rotation revives the retired clone with a new password; membership is kept.
    again = rotate(target, back)
    assert again.username == "alt_back_clone"
    assert postgres.can_login("alt_back_clone", again.password.reveal())
    assert is_member(postgres, "alt_back_clone", "alt_back")


def test_a_late_retire_never_ends_a_password_a_later_rotation_set(postgres: PostgresServer) -> None:
    target, base = setup_pair(postgres, "alt_late")
    clone = rotate(target, base)
    back = rotate(target, clone)  # the base has a new password; the old one is already gone

    target.retire(base, clone)  # the first rotation's retirement, arriving late

    assert postgres.can_login("alt_late", back.password.reveal())
    assert postgres.can_login("alt_late_clone", clone.password.reveal())


def test_an_existing_clone_gets_login_and_membership(postgres: PostgresServer) -> None:
    target, base = setup_pair(postgres, "alt_pre")
    superuser(postgres, sql.SQL("CREATE ROLE alt_pre_clone NOLOGIN"))
    superuser(postgres, sql.SQL("GRANT alt_pre_clone TO alt_pre_admin WITH ADMIN OPTION"))

    clone = rotate(target, base)

    assert postgres.can_login("alt_pre_clone", clone.password.reveal())
    assert is_member(postgres, "alt_pre_clone", "alt_pre")


def test_apply_refuses_a_login_that_is_not_the_alternate(postgres: PostgresServer) -> None:
    target, base = setup_pair(postgres, "alt_same")
    with pytest.raises(PermanentError, match="not an alternating pair"):
        target.apply(base, Credential("alt_same", generate_password()))
    assert postgres.can_login("alt_same", OLD)


def test_missing_base_login_is_not_rotatable(postgres: PostgresServer) -> None:
    target, _ = setup_pair(postgres, "alt_base_here")
    with pytest.raises(SecretNotRotatable, match="does not exist"):
        target.apply(cred("alt_ghost", "whatever-1"), Credential("alt_ghost_clone",
                                                                 generate_password()))
    assert not role_exists(postgres, "alt_ghost_clone")


def test_admin_without_createrole_is_refused_and_creates_nothing(postgres: PostgresServer) -> None:
    postgres.create_role("alt_weak_admin", ADMIN_PASSWORD)
    postgres.create_role("alt_weak", OLD)
    target = target_for(postgres, cred("alt_weak_admin", ADMIN_PASSWORD))
    with pytest.raises(AccessDenied, match="permission denied"):
        rotate(target, cred("alt_weak", OLD))
    assert not role_exists(postgres, "alt_weak_clone")
    assert postgres.can_login("alt_weak", OLD)


def test_open_sessions_of_the_retired_login_keep_running(postgres: PostgresServer) -> None:
    target, base = setup_pair(postgres, "alt_open")
    with psycopg.connect(host="127.0.0.1", port=postgres.port, user="alt_open", password=OLD,
                         dbname="postgres", sslmode="disable") as conn:
        target.retire(base, rotate(target, base))
        assert conn.execute("SELECT 1").fetchone() == (1,)
    assert not postgres.can_login("alt_open", OLD)


def test_next_username_alternates_within_the_identifier_limit(postgres: PostgresServer) -> None:
    target = target_for(postgres, cred("admin", ADMIN_PASSWORD))
    assert target.next_username(cred("app", "x")) == "app_clone"
    assert target.next_username(cred("app_clone", "x")) == "app"
    assert target.next_username(cred("a" * 57, "x")) == "a" * 57 + "_clone"  # 63 bytes
    with pytest.raises(SecretNotRotatable, match="63-byte"):
        target.next_username(cred("a" * 58, "x"))
    with pytest.raises(SecretNotRotatable, match="63-byte"):
        target.next_username(cred("é" * 29, "x"))  # 35 characters, 64 bytes
    with pytest.raises(SecretNotRotatable, match="no base name"):
        target.next_username(cred("_clone", "x"))


def test_the_strategy_needs_an_admin(postgres: PostgresServer) -> None:
    context = replace(context_for(postgres, cred("admin", ADMIN_PASSWORD)), admin=None)
    with pytest.raises(SecretNotRotatable, match="adminSecret"):
        PostgresAlternatingUsersTarget(context)


def test_the_catalogue_builds_this_target_for_the_strategy(postgres: PostgresServer) -> None:
    target = build_target(context_for(postgres, cred("admin", ADMIN_PASSWORD)))
    assert isinstance(target, PostgresAlternatingUsersTarget)
    assert target.retires_previous is True


# -- privilege parity before every switch ---------------------------------------------------

def test_a_pair_at_parity_has_no_differences_before_and_after_the_first_switch(
    postgres: PostgresServer,
) -> None:
    target, base = setup_pair(postgres, "parity_ok")
    assert target.parity_differences(base) == []  # the clone does not exist yet
    clone = rotate(target, base)
    assert target.parity_differences(clone) == []
    assert target.parity_differences(base) == []


@pytest.mark.parametrize(("drift", "expected"), [
    ("GRANT pg_read_all_data TO {clone}",
     "'{clone}' is a member of 'pg_read_all_data'; '{base}' is not"),
    ("REVOKE {base} FROM {clone}",
     "'{clone}' is not a member of '{base}', so it has none of its privileges"),
    ("ALTER ROLE {clone} NOINHERIT", "'{clone}' is NOINHERIT"),
    ("ALTER ROLE {base} SET search_path = reports, public",
     "'{clone}' lacks the setting 'search_path=reports, public' that '{base}' has"),
    ("ALTER ROLE {clone} SET statement_timeout = '5s'",
     "'{clone}' has the setting 'statement_timeout=5s'; '{base}' has not"),
    ("ALTER ROLE {base} CONNECTION LIMIT 5", "'{clone}' has connection limit -1; '{base}' has 5"),
    ("GRANT SELECT ON parity_reports TO {clone}",
     "'{clone}' has SELECT on public.parity_reports; '{base}' has not"),
    ("ALTER TABLE parity_reports OWNER TO {clone}",
     "'{clone}' owns 1 object(s) in this database; they should be owned by '{base}'"),
])
def test_each_kind_of_drift_is_named(postgres: PostgresServer, drift: str, expected: str) -> None:
    base_name = f"par_{abs(hash(drift)) % 10**8}"
    target, base = setup_pair(postgres, base_name)
    clone = rotate(target, base)
    names = {"base": base_name, "clone": clone.username}
    superuser(postgres, sql.SQL("DROP TABLE IF EXISTS parity_reports"))
    superuser(postgres, sql.SQL("CREATE TABLE parity_reports (id int)"))
    try:
        superuser(postgres, sql.SQL(drift.format(**names)))  # type: ignore[arg-type]
        found = target.parity_differences(clone)
        assert expected.format(**names) in "; ".join(found), found
        assert target.parity_differences(base) == found  # the same pair, from either side
    finally:
        superuser(postgres, sql.SQL("DROP TABLE IF EXISTS parity_reports"))


def test_a_base_with_settings_is_reported_before_the_first_clone_exists(
    postgres: PostgresServer,
) -> None:
    target, base = setup_pair(postgres, "parity_first")
    superuser(postgres, sql.SQL("ALTER ROLE parity_first SET search_path = app, public"))
    assert target.parity_differences(base) == [
        "'parity_first_clone' lacks the setting 'search_path=app, public' that "
        "'parity_first' has"]
