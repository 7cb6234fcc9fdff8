"""The MariaDB fixture itself, against the real server it starts (one for the session).

``test_how_password_changes_reach_...`` records how MariaDB 10.11 logs password changes, for the
MariaDB target to build on: the general log keeps every statement verbatim; the binary log rewrites
``SET PASSWORD`` to the hash but keeps ``ALTER USER ... IDENTIFIED BY`` verbatim.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pymysql
import pytest
import trustme
from pymysql.constants import CR, ER

from tests.support.mariadb import MariaDBServer, native_password_hash


def marker(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def test_tls_login_takes_the_right_password_and_refuses_a_wrong_one(mariadb: MariaDBServer) -> None:
    mariadb.create_user("fixture_app", "Right-Passw0rd")
    assert mariadb.can_login("fixture_app", "Right-Passw0rd")
    assert not mariadb.can_login("fixture_app", "Wrong-Passw0rd")
    with mariadb.connect("fixture_app", "Right-Passw0rd") as conn, conn.cursor() as cur:
        cur.execute("SHOW SESSION STATUS LIKE 'Ssl_version'")
        assert str(cur.fetchone()[1]).startswith("TLSv1.")
    mariadb.drop_user("fixture_app")
    assert not mariadb.can_login("fixture_app", "Right-Passw0rd")


def test_login_without_tls_is_refused_even_with_the_right_password(mariadb: MariaDBServer) -> None:
    mariadb.create_user("fixture_plain", "Right-Passw0rd")
    assert mariadb.can_login("fixture_plain", "Right-Passw0rd")
    with pytest.raises(pymysql.err.OperationalError) as refused:
        mariadb.connect("fixture_plain", "Right-Passw0rd", tls=False)
    # require_secure_transport refuses with the same error as a wrong password.
    assert refused.value.args[0] == ER.ACCESS_DENIED_ERROR
    with mariadb.admin() as conn, conn.cursor() as cur:
        cur.execute("SELECT @@global.require_secure_transport")
        assert cur.fetchone()[0] == 1


def test_the_server_certificate_is_verified_against_the_fixture_ca(
    mariadb: MariaDBServer, tmp_path: Path,
) -> None:
    mariadb.create_user("fixture_ca", "Right-Passw0rd")
    stranger = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(stranger))
    with pytest.raises(pymysql.err.OperationalError) as refused:
        mariadb.connect("fixture_ca", "Right-Passw0rd", ca_path=stranger)
    assert refused.value.args[0] == CR.CR_CONN_HOST_ERROR
    assert "CERTIFICATE_VERIFY_FAILED" in str(refused.value)


def test_the_admin_needs_no_password_on_the_socket_and_has_none_over_tcp(mariadb: MariaDBServer) -> None:
    with mariadb.admin() as conn, conn.cursor() as cur:
        cur.execute("SELECT CURRENT_USER()")
        assert cur.fetchone()[0] == f"{mariadb.admin_user}@localhost"
    assert not mariadb.can_login(mariadb.admin_user, "")


def test_the_general_log_records_a_statement(mariadb: MariaDBServer) -> None:
    mariadb.create_user("fixture_log", "Right-Passw0rd")
    text = marker("general-log")
    with mariadb.connect("fixture_log", "Right-Passw0rd") as conn, conn.cursor() as cur:
        cur.execute("SELECT %s", (text,))
    assert f"Query\tSELECT '{text}'" in mariadb.general_log()


def test_the_binlog_reader_returns_the_changes_as_text(mariadb: MariaDBServer) -> None:
    text = marker("binlog")
    with mariadb.admin() as conn, conn.cursor() as cur:
        cur.execute("CREATE DATABASE IF NOT EXISTS fixture_check")
        cur.execute("CREATE TABLE IF NOT EXISTS fixture_check.t (v VARCHAR(64))")
        cur.execute("INSERT INTO fixture_check.t VALUES (%s)", (text,))
    binlog = mariadb.binlog()
    assert "CREATE TABLE IF NOT EXISTS fixture_check.t" in binlog
    assert text in binlog


def test_the_server_is_mariadb(mariadb: MariaDBServer) -> None:
    assert "MariaDB" in mariadb.version()


def test_create_user_keeps_the_plaintext_out_of_both_logs(mariadb: MariaDBServer) -> None:
    password = marker("create-user-pw")
    mariadb.create_user("fixture_quiet", password)
    assert mariadb.can_login("fixture_quiet", password)
    general, binlog = mariadb.general_log(), mariadb.binlog()
    assert password not in general and password not in binlog
    assert native_password_hash(password) in general and native_password_hash(password) in binlog


def test_how_password_changes_reach_the_general_log_and_the_binlog(mariadb: MariaDBServer) -> None:
    """Characterisation of MariaDB 10.11, not of our code: where plaintext passwords land."""
    mariadb.create_user("fixture_pw", "Start-Passw0rd")
    altered, set_pw, hashed, failed = (marker(name) for name in ("alter", "set", "hashed", "failed"))
    with mariadb.admin() as conn, conn.cursor() as cur:
        cur.execute("ALTER USER %s@%s IDENTIFIED BY %s", ("fixture_pw", "%", altered))
        cur.execute("SET PASSWORD FOR %s@%s = PASSWORD(%s)", ("fixture_pw", "%", set_pw))
        cur.execute("ALTER USER %s@%s IDENTIFIED BY PASSWORD %s",
                    ("fixture_pw", "%", native_password_hash(hashed)))
        with pytest.raises(pymysql.err.OperationalError):
            cur.execute("ALTER USER %s@%s IDENTIFIED BY %s", ("fixture_absent", "%", failed))
    assert mariadb.can_login("fixture_pw", hashed)
    general, binlog = mariadb.general_log(), mariadb.binlog()
    # The general log keeps every statement as sent, even one that failed.
    assert f"ALTER USER 'fixture_pw'@'%' IDENTIFIED BY '{altered}'" in general
    assert f"SET PASSWORD FOR 'fixture_pw'@'%' = PASSWORD('{set_pw}')" in general
    assert failed in general
    # The binlog keeps ALTER USER ... IDENTIFIED BY verbatim but rewrites SET PASSWORD to the hash.
    assert f"ALTER USER 'fixture_pw'@'%' IDENTIFIED BY '{altered}'" in binlog
    assert set_pw not in binlog
    assert f"SET PASSWORD FOR 'fixture_pw'@'%'='{native_password_hash(set_pw)}'" in binlog
    assert failed not in binlog
    # Only a hash computed by the client keeps the plaintext out of both.
    assert hashed not in general and hashed not in binlog


def test_create_user_grants_privileges(mariadb: MariaDBServer) -> None:
    mariadb.create_user("fixture_rotator", "Rotator-Passw0rd", privileges=("CREATE USER",))
    mariadb.create_user("fixture_plain_user", "Plain-Passw0rd")
    mariadb.create_user("fixture_rotated", "Before-Passw0rd")
    with mariadb.connect("fixture_plain_user", "Plain-Passw0rd") as conn, conn.cursor() as cur:
        with pytest.raises(pymysql.err.OperationalError) as refused:
            cur.execute("ALTER USER %s@%s IDENTIFIED BY PASSWORD %s",
                        ("fixture_rotated", "%", native_password_hash("After-Passw0rd")))
        assert refused.value.args[0] == ER.SPECIFIC_ACCESS_DENIED_ERROR
    with mariadb.connect("fixture_rotator", "Rotator-Passw0rd") as conn, conn.cursor() as cur:
        cur.execute("ALTER USER %s@%s IDENTIFIED BY PASSWORD %s",
                    ("fixture_rotated", "%", native_password_hash("After-Passw0rd")))
    assert mariadb.can_login("fixture_rotated", "After-Passw0rd")
    assert not mariadb.can_login("fixture_rotated", "Before-Passw0rd")
