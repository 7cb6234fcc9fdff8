"""PostgreSQL logins (psycopg 3): the single-user and the alternating-users strategies.

The new password never reaches the server in plaintext: the client computes a SCRAM-SHA-256
verifier with libpq's ``PQencryptPasswordConn`` and sends that, which PostgreSQL stores as is,
so neither ``log_statement`` nor ``pg_stat_statements`` can see the password. Identifiers and
the verifier are composed with :mod:`psycopg.sql`, since utility statements such as
``ALTER ROLE`` cannot take bind parameters under psycopg 3's server-side binding.

**single-user** changes the password of the one login; the old password stops working the
moment ``apply`` succeeds, so a consumer that has not re-read Key Vault fails its next login.

**alternating-users** (AWS Secrets Manager's "alternating users") keeps two logins, the base
(``app``) and its clone (``app_clone``). Each rotation gives the login the secret does *not*
hold a fresh password and moves the secret to it; the other keeps working until ``retire``
sets its password to NULL after the grace period. Both are changed by the admin login
(the operator target's ``adminSecret``), which needs ``CREATEROLE``; from PostgreSQL 16 on it also needs
``ADMIN OPTION`` on the base role (``GRANT app TO rotator WITH ADMIN OPTION, INHERIT FALSE,
SET FALSE``) to change the base's password and grant its membership; it holds that on the
clone already, having created it. Caveats, all from PostgreSQL's role model:

- The clone is a *member* of the base and inherits its privileges (only while the clone has
  ``INHERIT``, the default). Per-role settings (``ALTER ROLE app SET search_path …``),
  ``CONNECTION LIMIT`` and ``pg_hba.conf`` lines naming ``app`` are not inherited: repeat
  them for ``app_clone``, or write ``+app`` in ``pg_hba.conf`` to match every member.
- Objects the clone creates are owned by the clone, not the base, so half of an
  application's tables could end up owned by each login. Run migrations as the base, or
  have the application ``SET ROLE app`` before it creates anything.
- Retiring sets ``PASSWORD NULL``, which ends password logins only: ``cert``, ``peer``,
  ``ldap`` and other methods configured in ``pg_hba.conf`` are unaffected, and sessions that
  are already open keep running (PostgreSQL authenticates only when a connection starts);
  akv-rotator terminates none of them.

This is the only module that imports psycopg.
"""

from __future__ import annotations

import logging
from typing import TypeAlias

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from rotation.errors import (
    AccessDenied,
    PermanentError,
    RotatorError,
    SecretNotRotatable,
    TransientError,
    VerificationFailed,
)
from rotation.secret_value import Credential
from rotation.targets import pg_parity
from rotation.targets.base import TargetContext
from rotation.targets.pg_address import libpq_parameters

logger = logging.getLogger(__name__)

APPLICATION_NAME = "akv-rotator"
CLONE_SUFFIX = "_clone"
MAX_IDENTIFIER_BYTES = 63  # NAMEDATALEN - 1; longer names are silently truncated by the server
_REFUSED = ("password authentication failed", "no pg_hba.conf entry", "pg_hba.conf rejects",
            "permission denied")
_MISCONFIGURED = ("database \"", "does not exist", "invalid connection option", "invalid sslmode")
_PERMANENT_SQLSTATE_CLASSES = ("28", "42")  # invalid authorization, syntax/privilege
#: libpq's words when the server (or someone in the middle) offers less protection than the
#: connection demands: no TLS, a certificate that does not verify, a cleartext or MD5 request.
_UNPROTECTED = ("authentication method requirement", "does not support ssl",
                "channel binding required", "channel binding is required",
                "certificate verify failed", "does not match host name",
                "server certificate for", "root certificate file")

_Connection: TypeAlias = psycopg.Connection[tuple[object, ...]]


class _PostgresLogins:
    """What both strategies share: connecting as a login and proving a login works.

    Every connection uses the operator's address and TLS setting, turned into libpq
    parameters by :func:`rotation.targets.pg_address.libpq_parameters`: SCRAM only, and over
    TCP verified TLS with channel binding unless the operator chose otherwise.
    """

    def __init__(self, context: TargetContext) -> None:
        self._parameters = libpq_parameters(context.definition.connection, context.definition.tls)
        self._admin = context.admin
        self._timeout = max(1, round(context.connect_timeout_seconds))

    def accepts(self, credential: Credential) -> bool:
        try:
            with self._connect(credential):
                return True
        except AccessDenied:
            return False

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

    def _connect(self, credential: Credential) -> _Connection:
        # make_conninfo quotes every value, so nothing in the parameters can add an option.
        conninfo = make_conninfo("", **{"connect_timeout": str(self._timeout), **self._parameters,
                                        "application_name": APPLICATION_NAME})
        try:
            return psycopg.connect(conninfo, user=credential.username,
                                   password=credential.password.reveal(), autocommit=True)
        except psycopg.Error as exc:
            raise _translate(exc, f"connecting as {credential.username!r}") from exc


class PostgresTarget(_PostgresLogins):
    """A PostgreSQL role whose password akv-rotator changes (single-user strategy)."""

    retires_previous = False  # the old password stops working the moment apply succeeds

    def next_username(self, current: Credential) -> str:
        return current.username

    def retire(self, previous: Credential, current: Credential) -> None:
        """Nothing to retire: the single login's old password ended when apply succeeded."""

    def parity_differences(self, current: Credential) -> list[str]:
        """One login, so nothing to compare."""
        return []

    def apply(self, current: Credential, new: Credential) -> None:
        """Set ``new``'s password, logged in as the admin login or else as ``current``.

        Setting a password again changes nothing, so only one case needs care: a worker that
        died after changing it left ``current`` refused, and then a ``new`` that logs in means
        there is nothing left to do. That is checked only when ``current`` is refused, so a
        first attempt makes no login with a password the server cannot know yet.
        """
        try:
            conn = self._connect(self._admin or current)
        except AccessDenied:
            if self._admin is None and self.accepts(new):
                logger.info("new password already in place", extra={"target": "postgresql"})
                return
            raise
        with conn:
            try:
                conn.execute(sql.SQL("ALTER ROLE {} WITH PASSWORD {}").format(
                    sql.Identifier(new.username), _verifier(conn, new)))
            except psycopg.Error as exc:
                raise _translate(exc, f"changing the password of role {new.username!r}") from exc


class PostgresAlternatingUsersTarget(_PostgresLogins):
    """Two PostgreSQL logins, ``app`` and ``app_clone``, that take turns (alternating users).

    The clone is made a member of the base rather than given copies of the base's grants:
    membership follows every later ``GRANT``/``REVOKE`` on the base by itself, while copied
    grants would drift, and PostgreSQL has no ``SHOW GRANTS`` to copy from — privileges are
    spread over tables, sequences, schemas, functions, large objects and default privileges.
    """

    retires_previous = True  # the previous login keeps working until retire ends it

    def __init__(self, context: TargetContext) -> None:
        super().__init__(context)
        if context.admin is None:
            raise SecretNotRotatable(
                "strategy alternating-users needs the target's adminSecret (an admin login "
                "that may create the clone role and change both logins' passwords)"
            )
        self._admin_login: Credential = context.admin

    def next_username(self, current: Credential) -> str:
        """``app`` → ``app_clone`` and ``app_clone`` → ``app``."""
        return _alternate_of(current.username)

    def parity_differences(self, current: Credential) -> list[str]:
        """Compare the base and its clone (as it would be created, if it does not exist)."""
        other = _alternate_of(current.username)
        base, clone = (current.username, other) if other.endswith(CLONE_SUFFIX) else (
            other, current.username)
        with self._connect(self._admin_login) as conn:
            def query(statement: str, params: tuple[object, ...]) -> list[tuple[object, ...]]:
                return conn.execute(statement, params).fetchall()

            try:
                base_profile = pg_parity.read_profile(query, base)
                clone_profile = pg_parity.read_profile(query, clone)
            except psycopg.Error as exc:
                raise _translate(exc, f"comparing the privileges of {base!r} and {clone!r}") from exc
        if base_profile is None:
            raise SecretNotRotatable(f"the base login {base!r} does not exist")
        return pg_parity.differences(base_profile,
                                     clone_profile or pg_parity.as_created(clone, base))

    def apply(self, current: Credential, new: Credential) -> None:
        """Give ``new``'s login (creating the clone if needed) ``new``'s password.

        ``current`` is never touched: the refusal below keeps a bug from handing this method
        the login the secret holds now. Setting the password again changes nothing, so a
        repeated apply just does it again; ``new`` is tried only when the admin login is
        refused (nothing else could complete the rotation then), never first: before apply the
        new password cannot work, and trying it would leave a refused login in the server's
        log on every rotation.
        """
        _require_alternates(current.username, new.username)
        base = _base_name(new.username)
        doing = f"setting the password of role {new.username!r}"
        try:
            admin = self._connect(self._admin_login)
        except AccessDenied:
            if self.accepts(new):
                logger.info("new password already in place", extra={"target": "postgresql"})
                return
            raise
        with admin as conn:
            try:
                if not _role_exists(conn, base):
                    raise SecretNotRotatable(f"the base login {base!r} does not exist")
                role = sql.Identifier(new.username)
                with conn.transaction():
                    if _role_exists(conn, new.username):
                        conn.execute(sql.SQL("ALTER ROLE {} WITH LOGIN PASSWORD {}").format(
                            role, _verifier(conn, new)))
                    else:
                        conn.execute(sql.SQL("CREATE ROLE {} WITH LOGIN PASSWORD {}").format(
                            role, _verifier(conn, new)))
                        logger.info("created the alternate login",
                                    extra={"target": "postgresql", "role": new.username})
                    if new.username != base and not _is_member(conn, new.username, base):
                        conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(base), role))
            except psycopg.Error as exc:
                raise _translate(exc, doing) from exc

    def retire(self, previous: Credential, current: Credential) -> None:
        """End ``previous``'s password (``PASSWORD NULL``), keeping the role and its objects.

        Only the credential that was handed out is ended: if ``previous`` no longer logs in
        (retired already, or a later rotation has given that login a new password since),
        there is nothing to do, so repeating it, or running it late, never ends a password
        the secret holds now. Open sessions of ``previous`` are left running.
        """
        if previous.username == current.username:
            raise PermanentError(
                f"refusing to retire {previous.username!r}: it is the login the secret holds now"
            )
        _require_alternates(current.username, previous.username)
        if not self.accepts(previous):
            logger.info("previous password already retired",
                        extra={"target": "postgresql", "role": previous.username})
            return
        with self._connect(self._admin_login) as conn:
            try:
                conn.execute(sql.SQL("ALTER ROLE {} WITH PASSWORD NULL").format(
                    sql.Identifier(previous.username)))
            except psycopg.Error as exc:
                raise _translate(exc, f"retiring the password of role {previous.username!r}") from exc
        logger.info("retired the previous password",
                    extra={"target": "postgresql", "role": previous.username})


def _alternate_of(name: str) -> str:
    """``app`` ↔ ``app_clone``, refusing a name PostgreSQL would truncate."""
    other = _base_name(name) if name.endswith(CLONE_SUFFIX) else name + CLONE_SUFFIX
    if not other:
        raise SecretNotRotatable(f"login {name!r} has no base name to alternate with")
    if len(other.encode()) > MAX_IDENTIFIER_BYTES:
        raise SecretNotRotatable(
            f"the alternate login {other!r} would exceed PostgreSQL's "
            f"{MAX_IDENTIFIER_BYTES}-byte identifier limit; use a shorter base login"
        )
    return other


def _require_alternates(one: str, other: str) -> None:
    """Refuse to act on two logins that are not each other's alternates (a caller's bug)."""
    if _alternate_of(one) != other:
        raise PermanentError(f"logins {one!r} and {other!r} are not an alternating pair")


def _base_name(username: str) -> str:
    """The base of an alternating pair: whichever of the two does not end in ``_clone``."""
    return username[: -len(CLONE_SUFFIX)] if username.endswith(CLONE_SUFFIX) else username


def _verifier(conn: _Connection, credential: Credential) -> sql.Literal:
    """The SCRAM-SHA-256 verifier of ``credential``'s password, computed here, as a literal."""
    verifier = conn.pgconn.encrypt_password(
        credential.password.reveal().encode(), credential.username.encode(), b"scram-sha-256"
    )
    return sql.Literal(verifier.decode("ascii"))


def _role_exists(conn: _Connection, name: str) -> bool:
    return conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone() is not None


def _is_member(conn: _Connection, member: str, group: str) -> bool:
    row = conn.execute("SELECT pg_has_role(%s, %s, 'MEMBER')", (member, group)).fetchone()
    return bool(row and row[0])


def _translate(exc: psycopg.Error, doing: str) -> RotatorError:
    """Map psycopg's error onto our tree. Server messages carry no secret values."""
    message = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
    lowered = str(exc).lower()
    sqlstate = getattr(exc, "sqlstate", None) or ""
    if any(marker in lowered for marker in _UNPROTECTED):
        return PermanentError(f"PostgreSQL connection refused as unprotected when {doing}: "
                              f"{message} (akv-rotator never falls back to weaker protection)")
    if any(marker in lowered for marker in _REFUSED) or sqlstate.startswith("28"):
        return AccessDenied(f"PostgreSQL refused {doing}: {message}")
    if sqlstate[:2] in _PERMANENT_SQLSTATE_CLASSES:
        return PermanentError(f"PostgreSQL rejected {doing}: {message}")
    if any(marker in lowered for marker in _MISCONFIGURED):
        return SecretNotRotatable(f"PostgreSQL target is misconfigured when {doing}: {message}")
    if isinstance(exc, psycopg.ProgrammingError):
        return PermanentError(f"PostgreSQL rejected {doing}: {type(exc).__name__}")
    return TransientError(f"PostgreSQL unavailable when {doing}: {message}")
