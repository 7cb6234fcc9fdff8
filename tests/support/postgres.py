"""A throwaway PostgreSQL server from Debian's packages, on loopback with real passwords.

Local socket connections are ``trust`` for the test's superuser; TCP on 127.0.0.1 needs the
real password (``scram-sha-256``), so a rotation test can prove the old password is refused.
The server speaks TLS with a certificate for ``127.0.0.1`` from a throwaway CA (trustme), so
the rotator connects as in production: ``sslmode=verify-full`` with channel binding.
``initdb`` refuses to run as root, so as root the server runs as the ``postgres`` user.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import trustme
from psycopg import sql


def find_pg_bin() -> Path | None:
    """The newest Debian PostgreSQL bin directory, or ``None`` when none is installed."""
    override = os.environ.get("ROTATOR_TEST_PG_BIN")
    if override:
        return Path(override)
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_major, reverse=True)
    return Path(candidates[0]).parent if candidates else None


def _major(path: str) -> int:
    try:
        return int(Path(path).parent.parent.name)
    except ValueError:
        return 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class PostgresServer:
    """A running server: ``admin_conninfo`` is the trusted superuser over the socket."""

    port: int
    socket_dir: Path
    ca_path: Path  # the CA that signed the server's certificate, for verify-full

    @property
    def admin_conninfo(self) -> str:
        return f"host={self.socket_dir} port={self.port} user=postgres dbname=postgres"

    def tcp_address(self, dbname: str = "postgres") -> str:
        """A credential-free libpq URI for an operator target's address."""
        return f"postgresql://127.0.0.1:{self.port}/{dbname}"

    def create_role(self, name: str, password: str, *, createrole: bool = False) -> None:
        with psycopg.connect(self.admin_conninfo, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))
            options = sql.SQL("LOGIN CREATEROLE") if createrole else sql.SQL("LOGIN")
            conn.execute(
                sql.SQL("CREATE ROLE {} {} PASSWORD {}").format(
                    sql.Identifier(name), options, sql.Literal(password)
                )
            )

    def can_login(self, user: str, password: str, dbname: str = "postgres") -> bool:
        """Try a fresh TCP login; True if accepted, False if the password is refused."""
        try:
            with psycopg.connect(
                host="127.0.0.1", port=self.port, user=user, password=password,
                dbname=dbname, sslmode="disable", connect_timeout=5,
            ):
                return True
        except psycopg.OperationalError as exc:
            if "password authentication failed" in str(exc):
                return False
            raise


def _as_postgres(cmd: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


@contextmanager
def running_postgres(pg_bin: Path) -> Iterator[PostgresServer]:
    """Start a fresh cluster in a temporary directory and remove it afterwards."""
    base = Path(tempfile.mkdtemp(prefix="akv-rotator-pg-"))
    data = base / "data"
    port = free_port()
    ca_path = _server_certificate(base)
    if os.geteuid() == 0:
        base.chmod(0o755)
        for path in (base, base / "server.crt", base / "server.key"):
            shutil.chown(path, "postgres", "postgres")
    subprocess.run(
        _as_postgres([str(pg_bin / "initdb"), "-D", str(data), "-U", "postgres",
                      "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8",
                      "--locale=C.UTF-8"]),
        check=True, capture_output=True,
    )
    options = (f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off "
               "-c synchronous_commit=off -c full_page_writes=off -c log_statement=all "
               f"-c ssl=on -c ssl_cert_file={base / 'server.crt'} "
               f"-c ssl_key_file={base / 'server.key'}")
    subprocess.run(
        _as_postgres([str(pg_bin / "pg_ctl"), "-D", str(data), "-l", str(base / "log"), "-w",
                      "-o", options, "start"]),
        check=True, capture_output=True,
    )
    try:
        yield PostgresServer(port=port, socket_dir=base, ca_path=ca_path)
    finally:
        subprocess.run(
            _as_postgres([str(pg_bin / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]),
            check=False, capture_output=True,
        )
        shutil.rmtree(base, ignore_errors=True)


def _server_certificate(base: Path) -> Path:
    """A CA and a server certificate for 127.0.0.1/localhost; returns the CA's PEM path."""
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    server.cert_chain_pems[0].write_to_path(str(base / "server.crt"))
    server.private_key_pem.write_to_path(str(base / "server.key"))
    (base / "server.key").chmod(0o600)
    ca.cert_pem.write_to_path(str(base / "ca.pem"))
    return base / "ca.pem"


def server_log(server: PostgresServer) -> str:
    """The server's log text, to prove a plaintext password never reached it."""
    path = server.socket_dir / "log"
    return path.read_text(errors="replace") if path.exists() else ""
