"""The mysql target against a real MariaDB 10.11 (TLS required, general log and binlog on).

Every test uses its own accounts, since the server is shared by the session.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest
import trustme

from rotation.errors import (
    AccessDenied,
    PermanentError,
    SecretNotRotatable,
    TransientError,
    VerificationFailed,
)
from rotation.passwords import generate_password
from rotation.secret_value import Credential, SecretValue
from rotation.targets.mysql import (
    MySQLAlternatingUsersTarget,
    MySQLDualPasswordTarget,
    MySQLTarget,
)
from tests.support.mariadb import MariaDBServer, free_port, native_password_hash
from tests.support.targets import mysql_context

ADMIN_PASSWORD = "Admin-Passw0rd-M"


def cred(user: str, password: str) -> Credential:
    return Credential(user, SecretValue(password))


def new_for(user: str) -> Credential:
    return Credential(user, generate_password())


def admin_for(mariadb: MariaDBServer, name: str, *privileges: str,
              reads_accounts: bool = True) -> Credential:
    """An admin with global ``privileges`` and, unless told, SELECT on ``mysql.*``."""
    mariadb.create_user(name, ADMIN_PASSWORD, privileges=privileges)
    if reads_accounts:
        as_root(mariadb, "GRANT SELECT ON mysql.* TO %s@'%%'", name)
    return cred(name, ADMIN_PASSWORD)


def as_root(mariadb: MariaDBServer, statement: str, *args: object) -> list[tuple[object, ...]]:
    with mariadb.admin() as conn, conn.cursor() as cur:
        cur.execute(statement, args or None)
        return list(cur.fetchall())


def hosts_of(mariadb: MariaDBServer, user: str) -> list[str]:
    return [str(r[0]) for r in as_root(mariadb, "SELECT Host FROM mysql.user WHERE User = %s", user)]


# -- single-user ------------------------------------------------------------------------------


def test_login_changes_its_own_password_and_only_the_hash_reaches_the_logs(
    mariadb: MariaDBServer,
) -> None:
    mariadb.create_user("my_self", "Old-Passw0rd-1")
    target = MySQLTarget(mysql_context(mariadb))
    new = new_for("my_self")
    target.apply(cred("my_self", "Old-Passw0rd-1"), new)
    target.verify(new)
    assert mariadb.can_login("my_self", new.password.reveal())
    assert not mariadb.can_login("my_self", "Old-Passw0rd-1")
    general, binlog = mariadb.general_log(), mariadb.binlog()
    digest = native_password_hash(new.password.reveal())
    # The general log has the statement as sent, the binlog MariaDB's rewrite of it.
    assert f"SET PASSWORD = '{digest}'" in general
    assert f"SET PASSWORD FOR 'my_self'@'%'='{digest}'" in binlog
    assert new.password.reveal() not in general and new.password.reveal() not in binlog


def test_admin_changes_a_password_and_only_the_hash_reaches_the_logs(mariadb: MariaDBServer) -> None:
    admin = admin_for(mariadb, "my_admin1", "CREATE USER")
    mariadb.create_user("my_app1", "Old-Passw0rd-2")
    target = MySQLTarget(mysql_context(mariadb, admin=admin))
    new = new_for("my_app1")
    # With an admin the current password is not needed to change it.
    target.apply(cred("my_app1", "not-the-password"), new)
    target.verify(new)
    assert mariadb.can_login("my_app1", new.password.reveal())
    assert not mariadb.can_login("my_app1", "Old-Passw0rd-2")
    general, binlog = mariadb.general_log(), mariadb.binlog()
    digest = native_password_hash(new.password.reveal())
    assert f"ALTER USER 'my_app1'@'%' IDENTIFIED BY PASSWORD '{digest}'" in general
    assert f"ALTER USER 'my_app1'@'%' IDENTIFIED BY PASSWORD '{digest}'" in binlog
    assert new.password.reveal() not in general and new.password.reveal() not in binlog


def test_odd_user_names_are_escaped(mariadb: MariaDBServer) -> None:
    admin = admin_for(mariadb, "my_admin2", "CREATE USER")
    odd = "it's `odd`\\; DROP"
    mariadb.create_user(odd, "Old-Passw0rd-3")
    target = MySQLTarget(mysql_context(mariadb, admin=admin))
    new = new_for(odd)
    target.apply(cred(odd, "Old-Passw0rd-3"), new)
    target.verify(new)
    assert mariadb.can_login(odd, new.password.reveal())
    self_target = MySQLTarget(mysql_context(mariadb))
    newer = new_for(odd)
    self_target.apply(new, newer)
    assert mariadb.can_login(odd, newer.password.reveal())


def test_apply_is_a_no_op_when_the_new_password_already_works(mariadb: MariaDBServer) -> None:
    mariadb.create_user("my_idem", "Old-Passw0rd-4")
    target = MySQLTarget(mysql_context(mariadb))
    new = new_for("my_idem")
    target.apply(cred("my_idem", "Old-Passw0rd-4"), new)
    # The old password no longer works: a second apply can only succeed by noticing.
    target.apply(cred("my_idem", "Old-Passw0rd-4"), new)
    assert mariadb.can_login("my_idem", new.password.reveal())


def test_wrong_current_password_is_access_denied_and_changes_nothing(mariadb: MariaDBServer) -> None:
    mariadb.create_user("my_guarded", "Old-Passw0rd-5")
    target = MySQLTarget(mysql_context(mariadb))
    with pytest.raises(AccessDenied, match="1045") as caught:
        target.apply(cred("my_guarded", "Wrong-Passw0rd"), new_for("my_guarded"))
    assert "Wrong-Passw0rd" not in str(caught.value)
    assert mariadb.can_login("my_guarded", "Old-Passw0rd-5")


def test_verify_of_a_refused_login_is_verification_failed(mariadb: MariaDBServer) -> None:
    mariadb.create_user("my_verified", "Old-Passw0rd-6")
    with pytest.raises(VerificationFailed, match="refused"):
        MySQLTarget(mysql_context(mariadb)).verify(cred("my_verified", "not-it"))


def test_an_ambiguous_account_is_refused_listing_its_hosts(mariadb: MariaDBServer) -> None:
    admin = admin_for(mariadb, "my_admin3", "CREATE USER")
    mariadb.create_user("my_amb", "Old-Passw0rd-7")
    mariadb.create_user("my_amb", "Old-Passw0rd-7", host="10.1.%")
    mariadb.create_user("my_elsewhere", "Old-Passw0rd-7", host="10.2.%")
    target = MySQLTarget(mysql_context(mariadb, admin=admin))
    with pytest.raises(SecretNotRotatable, match=r"ambiguous.*'10\.1\.%'"):
        target.apply(cred("my_amb", "Old-Passw0rd-7"), new_for("my_amb"))
    with pytest.raises(SecretNotRotatable, match=r"does not exist.*hosts '10\.2\.%'.*accountHost"):
        target.apply(cred("my_elsewhere", "x"), new_for("my_elsewhere"))
    assert mariadb.can_login("my_amb", "Old-Passw0rd-7")
    # Naming the host explicitly is the operator's way out.
    explicit = MySQLTarget(mysql_context(mariadb, admin=admin, account_host="10.1.%"))
    explicit.apply(cred("my_amb", "x"), new_for("my_amb"))
    assert mariadb.can_login("my_amb", "Old-Passw0rd-7")  # '%' untouched


def test_a_login_that_is_another_account_than_declared_is_refused(mariadb: MariaDBServer) -> None:
    mariadb.create_user("my_local", "Old-Passw0rd-8", host="127.0.0.1")
    target = MySQLTarget(mysql_context(mariadb))  # accountHost '%'
    with pytest.raises(SecretNotRotatable, match=r"authenticates as 'my_local@127\.0\.0\.1'"):
        target.apply(cred("my_local", "Old-Passw0rd-8"), new_for("my_local"))
    assert mariadb.can_login("my_local", "Old-Passw0rd-8")


def test_an_admin_without_the_privilege_is_told_which(mariadb: MariaDBServer) -> None:
    weak = admin_for(mariadb, "my_weak_admin")
    mariadb.create_user("my_app9", "Old-Passw0rd-9")
    target = MySQLTarget(mysql_context(mariadb, admin=weak))
    with pytest.raises(PermanentError, match=r"lack of a privilege.*CREATE USER"):
        target.apply(cred("my_app9", "Old-Passw0rd-9"), new_for("my_app9"))
    assert mariadb.can_login("my_app9", "Old-Passw0rd-9")


def test_unknown_database_is_a_configuration_problem(mariadb: MariaDBServer) -> None:
    admin = admin_for(mariadb, "my_admin_db", "SELECT")
    target = MySQLTarget(mysql_context(mariadb, address=f"mysql://127.0.0.1:{mariadb.port}/no_such_db"))
    with pytest.raises(SecretNotRotatable, match="1049"):
        target.verify(admin)


# -- TLS ---------------------------------------------------------------------------------------


def test_verified_tls_login_with_the_test_ca(mariadb: MariaDBServer) -> None:
    mariadb.create_user("my_tls", "Old-Passw0rd-T")
    target = MySQLTarget(mysql_context(mariadb))
    assert target.accepts(cred("my_tls", "Old-Passw0rd-T"))
    assert not target.accepts(cred("my_tls", "Wrong-Passw0rd"))


def test_a_wrong_ca_fails_as_unprotected(mariadb: MariaDBServer, tmp_path: Path) -> None:
    mariadb.create_user("my_tls2", "Old-Passw0rd-T")
    stranger = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(stranger))
    target = MySQLTarget(mysql_context(mariadb, ca_path=str(stranger)))
    with pytest.raises(PermanentError, match=r"refused as unprotected.*CERTIFICATE_VERIFY_FAILED"):
        target.accepts(cred("my_tls2", "Old-Passw0rd-T"))


@pytest.fixture
def server_without_tls() -> Iterator[tuple[int, list[bytes]]]:
    """A listener that greets like a MySQL server offering no TLS and records what it gets."""
    received: list[bytes] = []
    listener = socket.create_server(("127.0.0.1", free_port()))

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            capabilities = 0x0200 | 0x8000 | 0x80000  # PROTOCOL_41, SECURE_CONNECTION, PLUGIN_AUTH
            payload = (b"\x0a" + b"5.5.5-10.11.0-MariaDB\x00" + struct.pack("<I", 7) + b"abcdefgh\x00"
                       + struct.pack("<H", capabilities & 0xFFFF) + b"\x2d" + struct.pack("<H", 2)
                       + struct.pack("<H", capabilities >> 16) + b"\x15" + b"\x00" * 10
                       + b"ijklmnopqrst\x00" + b"mysql_native_password\x00")
            conn.sendall(struct.pack("<I", len(payload))[:3] + b"\x00" + payload)
            conn.settimeout(2)
            try:
                while chunk := conn.recv(4096):
                    received.append(chunk)
            except OSError:
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1], received
    listener.close()
    thread.join(timeout=5)


def test_a_server_without_tls_is_refused_and_never_sees_the_login(
    mariadb: MariaDBServer, server_without_tls: tuple[int, list[bytes]],
) -> None:
    port, received = server_without_tls
    target = MySQLTarget(mysql_context(mariadb, address=f"mysql://127.0.0.1:{port}"))
    with pytest.raises(PermanentError, match=r"refused as unprotected.*2026"):
        target.accepts(cred("my_fallback", "Never-Sent-Passw0rd"))
    assert b"my_fallback" not in b"".join(received)


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A listener that accepts connections and never says a word, like a frozen server."""
    listener = socket.create_server(("127.0.0.1", free_port()))
    held: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except TimeoutError:
                continue
            except OSError:
                return

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join(timeout=5)
    listener.close()
    for conn in held:
        conn.close()


def test_a_server_that_accepts_and_never_answers_is_transient_within_the_timeout(
    mariadb: MariaDBServer, silent_server: int,
) -> None:
    """PyMySQL's connect_timeout covers only the TCP connect; the greeting read is bounded
    by the read timeout the target sets, so a frozen server cannot hold a step for ever."""
    target = MySQLTarget(mysql_context(mariadb, address=f"mysql://127.0.0.1:{silent_server}"))
    with pytest.raises(TransientError):
        target.accepts(cred("my_frozen", "Never-Answered-Passw0rd"))


# -- alternating-users -------------------------------------------------------------------------


def setup_pair(mariadb: MariaDBServer, base: str) -> tuple[MySQLAlternatingUsersTarget, Credential]:
    """A base account with a table it may read (and TLS required), and a capable admin."""
    admin = admin_for(mariadb, f"{base}_adm", "CREATE USER")
    mariadb.create_user(base, "Base-Passw0rd-0")
    as_root(mariadb, f"CREATE DATABASE IF NOT EXISTS {base}_db")
    as_root(mariadb, f"CREATE TABLE IF NOT EXISTS {base}_db.t (v INT)")
    as_root(mariadb, f"INSERT INTO {base}_db.t VALUES (42)")  # noqa: S608 (test-owned names)
    as_root(mariadb, f"GRANT SELECT ON {base}_db.t TO %s@'%%'", base)
    as_root(mariadb, "ALTER USER %s@'%%' REQUIRE SSL", base)
    as_root(mariadb, f"GRANT SELECT ON {base}_db.* TO %s@'%%' WITH GRANT OPTION", admin.username)
    return MySQLAlternatingUsersTarget(mysql_context(mariadb, "alternating-users", admin=admin)), \
        cred(base, "Base-Passw0rd-0")


def select_as(mariadb: MariaDBServer, login: Credential, statement: str) -> list[tuple[object, ...]]:
    with mariadb.connect(login.username, login.password.reveal()) as conn, conn.cursor() as cur:
        cur.execute(statement)
        return list(cur.fetchall())


def locked(mariadb: MariaDBServer, login: Credential) -> bool:
    """True when the right password is refused because the account is locked (4151)."""
    with pytest.raises(pymysql.err.OperationalError) as refused:
        mariadb.connect(login.username, login.password.reveal()).close()
    return refused.value.args[0] == 4151


def rotate(target: MySQLAlternatingUsersTarget, current: Credential) -> Credential:
    new = new_for(target.next_username(current))
    target.apply(current, new)
    target.verify(new)
    return new


def test_alternating_creates_the_clone_with_the_base_grants_and_switches_back_and_forth(
    mariadb: MariaDBServer,
) -> None:
    target, base = setup_pair(mariadb, "alt_my")
    clone = rotate(target, base)
    assert clone.username == "alt_my_clone"
    assert select_as(mariadb, clone, "SELECT v FROM alt_my_db.t") == [(42,)]
    assert select_as(mariadb, clone, "SELECT CURRENT_USER()") == [("alt_my_clone@%",)]
    grants = as_root(mariadb, "SHOW GRANTS FOR 'alt_my_clone'@'%'")
    assert any("REQUIRE SSL" in str(g[0]) for g in grants)
    assert not any(native_password_hash("Base-Passw0rd-0") in str(g[0]) for g in grants)
    assert mariadb.can_login("alt_my", "Base-Passw0rd-0")  # untouched until retired
    general, binlog = mariadb.general_log(), mariadb.binlog()
    assert "CREATE USER 'alt_my_clone'@'%' IDENTIFIED BY PASSWORD '*" in general
    assert clone.password.reveal() not in general and clone.password.reveal() not in binlog

    target.retire(base, clone)
    assert locked(mariadb, base)
    target.retire(base, clone)  # repeating it is a no-op
    with pytest.raises(PermanentError, match="holds now"):
        target.retire(clone, clone)

    back = rotate(target, clone)  # unlocks the base with its new password
    assert back.username == "alt_my"
    assert select_as(mariadb, back, "SELECT v FROM alt_my_db.t") == [(42,)]
    assert mariadb.can_login("alt_my_clone", clone.password.reveal())
    target.retire(clone, back)
    assert locked(mariadb, clone)
    assert back.password.reveal() not in mariadb.general_log()


def test_an_admin_without_grant_option_leaves_no_half_created_clone(mariadb: MariaDBServer) -> None:
    target, base = setup_pair(mariadb, "alt_weak")
    as_root(mariadb, "REVOKE GRANT OPTION ON alt_weak_db.* FROM 'alt_weak_adm'@'%'")
    with pytest.raises(PermanentError, match=r"lack of a privilege.*GRANT.*dropped"):
        rotate(target, base)
    assert hosts_of(mariadb, "alt_weak_clone") == []
    assert mariadb.can_login("alt_weak", "Base-Passw0rd-0")


def test_alternating_needs_an_admin_and_refuses_names_over_the_limit(mariadb: MariaDBServer) -> None:
    with pytest.raises(SecretNotRotatable, match="adminSecret"):
        MySQLAlternatingUsersTarget(mysql_context(mariadb))
    target, _ = setup_pair(mariadb, "alt_long")
    with pytest.raises(SecretNotRotatable, match="128-character"):
        target.next_username(cred("a" * 123, "x"))


# -- dual-password -----------------------------------------------------------------------------


def test_dual_password_is_refused_on_mariadb_before_anything_changes(mariadb: MariaDBServer) -> None:
    mariadb.create_user("my_dual", "Old-Passw0rd-D")
    target = MySQLDualPasswordTarget(mysql_context(mariadb, "dual-password"))
    current = cred("my_dual", "Old-Passw0rd-D")
    assert target.accepts(current)
    target.verify(current)
    new = new_for("my_dual")
    with pytest.raises(SecretNotRotatable, match=r"MySQL 8.0.14.*MariaDB has no dual passwords"):
        target.apply(current, new)
    assert mariadb.can_login("my_dual", "Old-Passw0rd-D")
    assert not mariadb.can_login("my_dual", new.password.reveal())
    assert "RETAIN" not in mariadb.general_log()


def test_mariadb_version_string_is_what_the_capability_check_reads(mariadb: MariaDBServer) -> None:
    with pymysql.connect(unix_socket=str(mariadb.socket_path), user=mariadb.admin_user,
                         ssl_disabled=True) as conn, conn.cursor() as cur:
        cur.execute("SELECT VERSION()")
        assert "MariaDB" in str(cur.fetchone()[0])


# -- privilege parity of alternating accounts --------------------------------------------------

def test_a_fresh_pair_is_at_parity_from_either_side(mariadb: MariaDBServer) -> None:
    target, base = setup_pair(mariadb, "my_par_ok")
    assert target.parity_differences(base) == []  # no clone yet: it will be created as a copy
    clone = rotate(target, base)
    assert target.parity_differences(clone) == []
    assert target.parity_differences(base) == []


def test_a_grant_to_one_account_only_is_named(mariadb: MariaDBServer) -> None:
    target, base = setup_pair(mariadb, "my_par_drift")
    clone = rotate(target, base)
    as_root(mariadb, "CREATE DATABASE IF NOT EXISTS my_par_reports")
    as_root(mariadb, "GRANT SELECT ON my_par_reports.* TO %s@'%%'", base.username)
    assert target.parity_differences(clone) == [
        "'my_par_drift_clone' lacks GRANT SELECT ON `my_par_reports`.*"]
    as_root(mariadb, "GRANT SELECT ON my_par_reports.* TO %s@'%%'", clone.username)
    as_root(mariadb, "ALTER USER %s@'%%' WITH MAX_QUERIES_PER_HOUR 7", clone.username)
    found = target.parity_differences(base)
    assert len(found) == 2, found
    assert found[0].startswith("'my_par_drift_clone' lacks GRANT USAGE ON *.*")
    assert "MAX_QUERIES_PER_HOUR 7" in found[1] and "'my_par_drift' has not" in found[1]
