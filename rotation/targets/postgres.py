"""PostgreSQL logins (psycopg 3), single-user strategy.

The new password never reaches the server in plaintext: the client computes a SCRAM-SHA-256
verifier with libpq's ``PQencryptPasswordConn`` and sends that, which PostgreSQL stores as is,
so neither ``log_statement`` nor ``pg_stat_statements`` can see the password. Identifiers and
the verifier are composed with :mod:`psycopg.sql`, since utility statements such as
``ALTER ROLE`` cannot take bind parameters under psycopg 3's server-side binding.

This is the only module that imports psycopg.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

import psycopg
from psycopg import sql

from rotation.errors import (
    AccessDenied,
    PermanentError,
    RotatorError,
    SecretNotRotatable,
    TransientError,
    VerificationFailed,
)
from rotation.secret_value import Credential
from rotation.targets.base import TargetContext

logger = logging.getLogger(__name__)

APPLICATION_NAME = "akv-rotator"
_REFUSED = ("password authentication failed", "no pg_hba.conf entry", "pg_hba.conf rejects",
            "role \"", "permission denied")
_MISCONFIGURED = ("database \"", "does not exist", "invalid connection option", "invalid sslmode")
_PERMANENT_SQLSTATE_CLASSES = ("28", "42")  # invalid authorization, syntax/privilege


class PostgresTarget:
    """A PostgreSQL role whose password akv-rotator changes."""

    def __init__(self, context: TargetContext) -> None:
        self._address = _checked_address(context.binding.address)
        self._admin = context.admin
        self._timeout = max(1, round(context.connect_timeout_seconds))

    def accepts(self, credential: Credential) -> bool:
        try:
            with self._connect(credential):
                return True
        except AccessDenied:
            return False

    def apply(self, current: Credential, new: Credential) -> None:
        if self.accepts(new):
            logger.info("new password already in place", extra={"target": "postgresql"})
            return
        actor = self._admin or current
        with self._connect(actor) as conn:
            try:
                verifier = conn.pgconn.encrypt_password(
                    new.password.reveal().encode(), new.username.encode(), b"scram-sha-256"
                )
                conn.execute(
                    sql.SQL("ALTER ROLE {} WITH PASSWORD {}").format(
                        sql.Identifier(new.username), sql.Literal(verifier.decode("ascii"))
                    )
                )
            except psycopg.Error as exc:
                raise _translate(exc, f"changing the password of role {new.username!r}") from exc

    def verify(self, credential: Credential) -> None:
        try:
            with self._connect(credential) as conn:
                row = conn.execute("SELECT current_user").fetchone()
        except AccessDenied as exc:
            raise VerificationFailed(
                f"a fresh login as {credential.username!r} with the new password was refused"
            ) from exc
        if row is None or row[0] != credential.username:
            raise VerificationFailed(f"logged in, but not as {credential.username!r}")

    def _connect(self, credential: Credential) -> psycopg.Connection[tuple[object, ...]]:
        try:
            return psycopg.connect(
                self._address,
                user=credential.username,
                password=credential.password.reveal(),
                connect_timeout=self._timeout,
                application_name=APPLICATION_NAME,
                autocommit=True,
            )
        except psycopg.Error as exc:
            raise _translate(exc, f"connecting as {credential.username!r}") from exc


def _checked_address(address: str) -> str:
    """Accept a libpq URI or key/value string that carries no credentials of its own."""
    if address.startswith(("postgresql://", "postgres://")):
        parts = urlsplit(address)
        if parts.username or parts.password:
            raise SecretNotRotatable("rotator-address must not contain a username or password")
    elif "password" in address.lower() or "user=" in address.lower():
        raise SecretNotRotatable("rotator-address must not contain a username or password")
    return address


def _translate(exc: psycopg.Error, doing: str) -> RotatorError:
    """Map psycopg's error onto our tree. Server messages carry no secret values."""
    message = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
    lowered = str(exc).lower()
    sqlstate = getattr(exc, "sqlstate", None) or ""
    if any(marker in lowered for marker in _REFUSED) or sqlstate.startswith("28"):
        return AccessDenied(f"PostgreSQL refused {doing}: {message}")
    if sqlstate[:2] in _PERMANENT_SQLSTATE_CLASSES:
        return PermanentError(f"PostgreSQL rejected {doing}: {message}")
    if any(marker in lowered for marker in _MISCONFIGURED):
        return SecretNotRotatable(f"PostgreSQL target is misconfigured when {doing}: {message}")
    if isinstance(exc, psycopg.ProgrammingError):
        return PermanentError(f"PostgreSQL rejected {doing}: {type(exc).__name__}")
    return TransientError(f"PostgreSQL unavailable when {doing}: {message}")
