"""MySQL and MariaDB accounts (PyMySQL): single-user, alternating-users and dual-password.

An account is ``'user'@'host'``; the host part is the operator target's ``accountHost``
(default ``'%'``). Because a client connecting from a host with a more specific entry logs
in as *that* account, an account is refused as ambiguous, listing the hosts, when
``'user'@'accountHost'`` does not exist but the user does on other hosts, or when
``accountHost`` is ``'%'`` and other entries for the user exist. A login changing its own
password is instead checked by ``CURRENT_USER()``: it must be the declared account.

**Keeping the password out of the server's logs.** MariaDB 10.11 writes every statement
verbatim to its general log, and ``ALTER USER ... IDENTIFIED BY 'plaintext'`` verbatim to
its binary log too (``tests/targets/test_mariadb_server.py``). So on MariaDB the client
computes the ``mysql_native_password`` hash (``'*' + SHA1(SHA1(pw))``) and sends only that:
``ALTER USER ... IDENTIFIED BY PASSWORD '*HASH'`` (admin) or ``SET PASSWORD = '*HASH'`` (a
login changing its own, which needs no privilege; ``ALTER USER CURRENT_USER()`` would need
``CREATE USER``). Sending the hash also switches an account that used another plugin to
``mysql_native_password``. MySQL 8 removed ``IDENTIFIED BY PASSWORD`` and rewrites
passwords in its own logs ("Passwords and Logging" in the MySQL manual), so on MySQL the
password is sent as ``IDENTIFIED BY '…'``, keeping the account's plugin. **The MySQL paths
are not tested here: no MySQL server is installable in this environment (Debian 12 has only
MariaDB).** Accounts and literals are composed only with the driver's own escaping
(``conn.escape``); values are never formatted into SQL. Passwords reach the driver as
UTF-8 bytes, since PyMySQL would encode a ``str`` as latin-1 at login.

**single-user** changes the account's password in place; the old one stops working at once.

**alternating-users** keeps ``app`` and ``app_clone``. The admin creates the clone with the
base's grants, copied line by line from ``SHOW GRANTS FOR base`` with the grantee replaced
exactly (and the base's password hash removed), plus the base's TLS requirement
(``REQUIRE``) read from ``mysql.user``. Unlike PostgreSQL there is no membership to inherit
through, so a later ``GRANT`` to the base is *not* followed by the clone. If creating the
clone or copying a grant fails, the half-created clone is dropped and the error names the
missing privilege. The admin needs ``CREATE USER``, ``SELECT`` on ``mysql.*`` (for ``SHOW
GRANTS`` and the account lookup), and every privilege the base holds ``WITH GRANT OPTION``.
``retire`` locks the previous account (``ACCOUNT LOCK``) rather than giving it an unknown
password: a lock ends every way of logging in, not only the password, keeps the account's
grants, and is reversible by an operator in an emergency (``ACCOUNT UNLOCK`` brings the
previous credential back); the next rotation that switches back to that account sets its
new password and unlocks it in one ``ALTER USER``. Open sessions keep running (MySQL
authenticates at connection start); none are killed.

**dual-password** is MySQL 8.0.14+'s ``RETAIN CURRENT PASSWORD`` (both passwords work until
``retire`` runs ``DISCARD OLD PASSWORD``). MariaDB has no such clause and older MySQL
neither: ``apply`` and ``retire`` detect the server first and refuse with
SecretNotRotatable before anything changes (the constructor has no connection to ask).

This is the only module that imports pymysql.
"""

from __future__ import annotations

import hashlib
import logging
import re
import ssl
from dataclasses import dataclass
from typing import Any

import pymysql
from pymysql.constants import CR, ER

from rotation.errors import (
    AccessDenied,
    PermanentError,
    RotatorError,
    SecretNotRotatable,
    TransientError,
    VerificationFailed,
)
from rotation.secret_value import Credential
from rotation.targets import mysql_address
from rotation.targets.base import TargetContext

logger = logging.getLogger(__name__)

CLONE_SUFFIX = "_clone"
MARIADB_MAX_USER = 128  # measured on 10.11: 129 characters -> 1470 "should be no longer than 128"
MYSQL_MAX_USER = 32
DUAL_PASSWORD_SINCE = (8, 0, 14)
_KIND = "mysql"
#: Server errors meaning "this login is refused": wrong password or no such account (1045),
#: no password given (1698), account locked (4151).
_DENIED = frozenset({ER.ACCESS_DENIED_ERROR, 1698, 4151})
#: The login or admin lacks a privilege: the server's message names it.
_NO_PRIVILEGE = frozenset({ER.SPECIFIC_ACCESS_DENIED_ERROR, ER.DBACCESS_DENIED_ERROR,
                           ER.TABLEACCESS_DENIED_ERROR, ER.COLUMNACCESS_DENIED_ERROR,
                           ER.PASSWORD_NOT_ALLOWED, 1410})
_UNPROTECTED = ("certificate verify failed", "certificate_verify_failed", "ssl is required",
                "hostname mismatch", "ip address mismatch", "wrong version number",
                "tlsv1 alert", "[ssl")
_IDENTIFIED_BY_HASH = re.compile(r" IDENTIFIED BY PASSWORD '\*[0-9A-F]{40}'")
_VERSION = re.compile(r"^(\d+)\.(\d+)\.(\d+)")


@dataclass(frozen=True, slots=True)
class _Server:
    """What the connected server is, from ``SELECT VERSION()``."""

    version: str

    @property
    def is_mariadb(self) -> bool:
        return "mariadb" in self.version.lower()

    @property
    def max_user_length(self) -> int:
        return MARIADB_MAX_USER if self.is_mariadb else MYSQL_MAX_USER

    @property
    def has_dual_passwords(self) -> bool:
        match = _VERSION.match(self.version)
        numbers = tuple(int(part) for part in match.groups()) if match else (0, 0, 0)
        return not self.is_mariadb and numbers >= DUAL_PASSWORD_SINCE


class _MySQLLogins:
    """What every strategy shares: connecting as a login, proving it, naming its account.

    Every connection uses the operator's address and TLS setting, turned into PyMySQL
    arguments by :mod:`rotation.targets.mysql_address` (an explicit TLS context that never
    falls back to cleartext).

    Every read and write waits at most the connect timeout too. PyMySQL's ``connect_timeout``
    covers only the TCP connect: without a read timeout, a server that accepts the
    connection but never answers (frozen, a stalled host, a half-open connection) holds the
    step for ever, past the lease, where it must fail as transient
    (``tests/integration/test_long_faults.py``, the database frozen after a step).
    """

    def __init__(self, context: TargetContext) -> None:
        definition = context.definition
        try:
            tls = mysql_address.tls_context(definition.tls)
        except (OSError, ssl.SSLError) as exc:
            raise SecretNotRotatable(
                f"the CA bundle of target {definition.target_id!r} cannot be used: "
                f"{type(exc).__name__}") from exc
        self._parameters = mysql_address.pymysql_parameters(
            definition.connection, tls, connect_timeout=max(1, round(context.connect_timeout_seconds)))
        timeout = self._parameters["connect_timeout"]  # the address's own, when it sets one
        self._parameters.update(read_timeout=timeout, write_timeout=timeout)
        self._admin = context.admin
        self._host = definition.account_host

    def accepts(self, credential: Credential) -> bool:
        try:
            with self._connect(credential):
                return True
        except AccessDenied:
            return False

    def verify(self, credential: Credential) -> None:
        try:
            with self._connect(credential) as conn:
                who = _current_user(conn, f"checking who {credential.username!r} is")
        except AccessDenied as exc:
            raise VerificationFailed(
                f"a fresh login as {credential.username!r} with the new password was refused"
            ) from exc
        if who != f"{credential.username}@{self._host}":
            raise VerificationFailed(f"logged in as {who!r}, not as the account "
                                     f"{self._describe(credential.username)}")

    def _connect(self, credential: Credential) -> Any:
        try:
            return pymysql.connect(user=credential.username,
                                   password=credential.password.reveal().encode("utf-8"),
                                   **self._parameters)
        except pymysql.MySQLError as exc:
            raise _translate(exc, f"connecting as {credential.username!r}") from exc

    def _describe(self, username: str) -> str:
        return f"'{username}'@'{self._host}'"

    def _account(self, conn: Any, username: str) -> str:
        """``'user'@'host'`` as SQL, through the driver's escaping."""
        return f"{conn.escape(username)}@{conn.escape(self._host)}"

    def _hosts(self, conn: Any, username: str) -> list[str]:
        """Every host the user has an account on (needs SELECT on ``mysql.user``)."""
        rows = _query(conn, "SELECT Host FROM mysql.user WHERE User = %s", (username,))
        return sorted(str(row[0]) for row in rows)

    def _check_account(self, conn: Any, username: str, *, may_be_absent: bool = False) -> bool:
        """True when ``'user'@'accountHost'`` exists and is unambiguous; refuse otherwise.

        With ``may_be_absent`` a user with no account at all is fine (a clone to create).
        """
        hosts = self._hosts(conn, username)
        others = [h for h in hosts if h != self._host]
        if self._host not in hosts:
            if others:
                raise SecretNotRotatable(
                    f"account {self._describe(username)} does not exist, but user {username!r} "
                    f"has accounts on hosts {', '.join(map(repr, others))}: set the target's "
                    "accountHost to the one akv-rotator should change")
            if may_be_absent:
                return False
            raise SecretNotRotatable(f"account {self._describe(username)} does not exist")
        if self._host == "%" and others:
            raise SecretNotRotatable(
                f"account {self._describe(username)} is ambiguous: user {username!r} also has "
                f"accounts on hosts {', '.join(map(repr, others))}, and a client connecting "
                "from one of them logs in as that account instead; set the target's "
                "accountHost, or drop the other accounts")
        return True

    def _check_own_account(self, conn: Any, username: str) -> None:
        """A login changing its own password must be the declared account."""
        who = _current_user(conn, f"checking who {username!r} is")
        if who != f"{username}@{self._host}":
            raise SecretNotRotatable(
                f"login {username!r} authenticates as {who!r}, not as the target's account "
                f"{self._describe(username)}: set the target's accountHost, or give it an "
                "adminSecret")

    def _set_password(self, conn: Any, server: _Server, username: str, credential: Credential,
                      *, suffix: str = "") -> None:
        """``ALTER USER`` as an admin; the hash on MariaDB (see the module docstring)."""
        _execute(conn, f"ALTER USER {self._account(conn, username)} "
                       f"{_identified(conn, server, credential)}{suffix}")

    def _set_own_password(self, conn: Any, server: _Server, credential: Credential) -> None:
        if server.is_mariadb:
            _execute(conn, f"SET PASSWORD = {conn.escape(native_password_hash(credential))}")
        else:
            _execute(conn, "ALTER USER CURRENT_USER() IDENTIFIED BY "
                           f"{conn.escape(credential.password.reveal())}")


class MySQLTarget(_MySQLLogins):
    """A MySQL/MariaDB account whose password akv-rotator changes (single-user strategy)."""

    retires_previous = False  # the old password stops working the moment apply succeeds

    def next_username(self, current: Credential) -> str:
        return current.username

    def parity_differences(self, current: Credential) -> list[str]:
        """One account, so nothing to compare."""
        return []

    def retire(self, previous: Credential, current: Credential) -> None:
        """Nothing to retire: the old password ended when apply succeeded."""

    def apply(self, current: Credential, new: Credential) -> None:
        if self.accepts(new):
            logger.info("new password already in place", extra={"target": _KIND})
            return
        doing = f"changing the password of {self._describe(new.username)}"
        with self._connect(self._admin or current) as conn:
            try:
                server = _server(conn)
                if self._admin is not None:
                    self._check_account(conn, new.username)
                    self._set_password(conn, server, new.username, new)
                else:
                    self._check_own_account(conn, current.username)
                    self._set_own_password(conn, server, new)
            except pymysql.MySQLError as exc:
                raise _translate(exc, doing) from exc


class MySQLAlternatingUsersTarget(_MySQLLogins):
    """Two accounts, ``app`` and ``app_clone``, that take turns (alternating users)."""

    retires_previous = True  # the previous account keeps working until retire locks it

    def __init__(self, context: TargetContext) -> None:
        super().__init__(context)
        if context.admin is None:
            raise SecretNotRotatable(
                "strategy alternating-users needs the target's adminSecret (an admin login "
                "that may create the clone account and change both accounts)")
        self._admin_login: Credential = context.admin

    def next_username(self, current: Credential) -> str:
        """``app`` → ``app_clone`` and ``app_clone`` → ``app``."""
        return _alternate_of(current.username, MARIADB_MAX_USER)

    def parity_differences(self, current: Credential) -> list[str]:
        """Compare ``SHOW GRANTS`` of the base and the clone, normalised for the account name
        and the password hash: privileges, role grants, default roles, ``REQUIRE`` and
        resource limits. A clone that does not exist yet will be created as a copy.

        Without role inheritance a grant made to one account only is exactly the drift that
        breaks a switch ("'app_clone' lacks GRANT SELECT ON `reports`.*").
        """
        other = _alternate_of(current.username, MARIADB_MAX_USER)
        base, clone = ((current.username, other) if other.endswith(CLONE_SUFFIX)
                       else (other, current.username))
        with self._connect(self._admin_login) as conn:
            try:
                if not self._check_account(conn, base, may_be_absent=True):
                    raise SecretNotRotatable(f"the base account {self._describe(base)} does not exist")
                if not self._check_account(conn, clone, may_be_absent=True):
                    return []
                base_grants = self._normalised_grants(conn, base)
                clone_grants = self._normalised_grants(conn, clone)
            except pymysql.MySQLError as exc:
                raise _translate(exc, f"comparing the grants of {base!r} and {clone!r}") from exc
        return ([f"{clone!r} lacks {grant}" for grant in sorted(base_grants - clone_grants)]
                + [f"{clone!r} has {grant}; {base!r} has not"
                   for grant in sorted(clone_grants - base_grants)])

    def _normalised_grants(self, conn: Any, username: str) -> set[str]:
        """The account's ``SHOW GRANTS`` lines without its own name and password hash."""
        grantee = _grantee(username, self._host)
        lines = _query(conn, f"SHOW GRANTS FOR {self._account(conn, username)}")
        normalised = set()
        for row in lines:
            line = _IDENTIFIED_BY_HASH.sub("", str(row[0]))
            normalised.add(line.replace(f" TO {grantee}", "").replace(f" FOR {grantee}", "")
                           .strip())
        return normalised

    def apply(self, current: Credential, new: Credential) -> None:
        """Give ``new``'s account (creating the clone if needed) ``new``'s password, unlocked.

        ``current`` is never touched: the refusal below keeps a bug from handing this method
        the account the secret holds now.
        """
        if self.accepts(new):
            logger.info("new password already in place", extra={"target": _KIND})
            return
        _require_alternates(current.username, new.username)
        base = _base_name(new.username)
        doing = f"setting the password of {self._describe(new.username)}"
        with self._connect(self._admin_login) as conn:
            try:
                server = _server(conn)
                _alternate_of(base, server.max_user_length)
                if not self._check_account(conn, base, may_be_absent=True):
                    raise SecretNotRotatable(f"the base account {self._describe(base)} does not exist")
                if self._check_account(conn, new.username, may_be_absent=True):
                    self._set_password(conn, server, new.username, new, suffix=" ACCOUNT UNLOCK")
                    return
            except pymysql.MySQLError as exc:
                raise _translate(exc, doing) from exc
            self._create_clone(conn, server, base, new)

    def retire(self, previous: Credential, current: Credential) -> None:
        """Lock ``previous``'s account (``ACCOUNT LOCK``), keeping its grants.

        A no-op when ``previous`` no longer logs in (locked already, or given a new password
        by a later rotation since), so repeating it, or running it late, never ends a
        credential the secret holds now. Open sessions of ``previous`` keep running.
        """
        if previous.username == current.username:
            raise PermanentError(
                f"refusing to retire {previous.username!r}: it is the login the secret holds now")
        _require_alternates(current.username, previous.username)
        if not self.accepts(previous):
            logger.info("previous password already retired",
                        extra={"target": _KIND, "login": previous.username})
            return
        with self._connect(self._admin_login) as conn:
            try:
                self._check_account(conn, previous.username)
                _execute(conn, f"ALTER USER {self._account(conn, previous.username)} ACCOUNT LOCK")
            except pymysql.MySQLError as exc:
                raise _translate(exc, f"locking {self._describe(previous.username)}") from exc
        logger.info("retired the previous account", extra={"target": _KIND, "login": previous.username})

    def _create_clone(self, conn: Any, server: _Server, base: str, new: Credential) -> None:
        """Create the clone with the base's grants and TLS requirement, or leave nothing."""
        base_grantee, clone_grantee = _grantee(base, self._host), _grantee(new.username, self._host)
        try:
            grants = [str(row[0]) for row in _query(conn, f"SHOW GRANTS FOR {self._account(conn, base)}")]
            require = self._tls_requirement(conn, base)
        except pymysql.MySQLError as exc:
            raise _translate(exc, f"reading the grants of {self._describe(base)}") from exc
        statements = [_rewrite_grant(line, base_grantee, clone_grantee) for line in grants]
        clone = self._account(conn, new.username)
        try:
            _execute(conn, f"CREATE USER {clone} {_identified(conn, server, new)}")
        except pymysql.MySQLError as exc:
            raise _translate(exc, f"creating the clone {self._describe(new.username)}") from exc
        try:
            for statement in filter(None, statements):
                _execute(conn, statement)
            if require:
                _execute(conn, f"ALTER USER {clone} REQUIRE {require}")
        except pymysql.MySQLError as exc:
            error = _translate(exc, f"copying the grants of {self._describe(base)} to the clone "
                                    f"{self._describe(new.username)}")
            try:
                _execute(conn, f"DROP USER IF EXISTS {clone}")
            except pymysql.MySQLError as drop_exc:
                raise type(error)(f"{error}; dropping the half-created clone failed too: "
                                  f"{_message(drop_exc)}") from exc
            raise type(error)(f"{error}; the half-created clone was dropped") from exc
        logger.info("created the alternate account", extra={"target": _KIND, "login": new.username})

    def _tls_requirement(self, conn: Any, base: str) -> str:
        """The base's ``REQUIRE`` clause (empty for none), composed with escaping."""
        rows = _query(conn, "SELECT ssl_type, ssl_cipher, x509_issuer, x509_subject FROM mysql.user "
                            "WHERE User = %s AND Host = %s", (base, self._host))
        if not rows:
            return ""
        ssl_type, cipher, issuer, subject = (_text(value) for value in rows[0])
        if ssl_type == "ANY":
            return "SSL"
        if ssl_type == "X509":
            return "X509"
        if ssl_type == "SPECIFIED":
            parts = [f"{word} {conn.escape(value)}" for word, value in
                     (("CIPHER", cipher), ("ISSUER", issuer), ("SUBJECT", subject)) if value]
            return " AND ".join(parts) or "SSL"
        return ""


class MySQLDualPasswordTarget(_MySQLLogins):
    """One MySQL 8.0.14+ account holding two passwords during the switch (dual-password).

    Untested here (no MySQL server is installable); MariaDB's refusal is tested.
    """

    retires_previous = True  # the old password keeps working until DISCARD OLD PASSWORD

    def next_username(self, current: Credential) -> str:
        return current.username

    def parity_differences(self, current: Credential) -> list[str]:
        """One account, so nothing to compare."""
        return []

    def apply(self, current: Credential, new: Credential) -> None:
        if self.accepts(new):
            logger.info("new password already in place", extra={"target": _KIND})
            return
        doing = f"adding a second password to {self._describe(new.username)}"
        with self._connect(self._admin or current) as conn:
            try:
                _require_dual_passwords(_server(conn))
                secret = conn.escape(new.password.reveal())
                if self._admin is not None:
                    self._check_account(conn, new.username)
                    _execute(conn, f"ALTER USER {self._account(conn, new.username)} IDENTIFIED BY "
                                   f"{secret} RETAIN CURRENT PASSWORD")
                else:
                    self._check_own_account(conn, current.username)
                    _execute(conn, f"ALTER USER CURRENT_USER() IDENTIFIED BY {secret} "
                                   "RETAIN CURRENT PASSWORD")
            except pymysql.MySQLError as exc:
                raise _translate(exc, doing) from exc

    def retire(self, previous: Credential, current: Credential) -> None:
        """``DISCARD OLD PASSWORD``; a no-op once ``previous`` no longer logs in."""
        if previous.username != current.username:
            raise PermanentError("dual-password keeps one login; previous and current differ")
        if previous.password == current.password:
            raise PermanentError("refusing to retire the password the secret holds now")
        if not self.accepts(previous):
            logger.info("previous password already retired", extra={"target": _KIND})
            return
        with self._connect(self._admin or current) as conn:
            try:
                _require_dual_passwords(_server(conn))
                account = (self._account(conn, current.username) if self._admin is not None
                           else "CURRENT_USER()")
                _execute(conn, f"ALTER USER {account} DISCARD OLD PASSWORD")
            except pymysql.MySQLError as exc:
                raise _translate(exc, f"discarding the old password of "
                                      f"{self._describe(current.username)}") from exc


def native_password_hash(credential: Credential) -> str:
    """``mysql_native_password``'s stored form of the password, ``'*' + SHA1(SHA1(pw))``.

    SHA-1 twice is that plugin's format, not a choice made here.
    """
    inner = hashlib.sha1(credential.password.reveal().encode("utf-8")).digest()  # noqa: S324
    return "*" + hashlib.sha1(inner).hexdigest().upper()  # noqa: S324


def _identified(conn: Any, server: _Server, credential: Credential) -> str:
    if server.is_mariadb:
        return f"IDENTIFIED BY PASSWORD {conn.escape(native_password_hash(credential))}"
    return f"IDENTIFIED BY {conn.escape(credential.password.reveal())}"  # MySQL rewrites its logs


def _require_dual_passwords(server: _Server) -> None:
    if not server.has_dual_passwords:
        raise SecretNotRotatable(
            f"strategy dual-password needs MySQL 8.0.14 or later (RETAIN CURRENT PASSWORD); "
            f"the server is {server.version!r}"
            + (", and MariaDB has no dual passwords: use single-user or alternating-users"
               if server.is_mariadb else ""))


def _grantee(user: str, host: str) -> str:
    """An account as ``SHOW GRANTS`` prints it: backquoted, backquotes doubled."""
    return "`{}`@`{}`".format(user.replace("`", "``"), host.replace("`", "``"))


def _rewrite_grant(line: str, base: str, clone: str) -> str:
    """One ``SHOW GRANTS`` line of the base, made the clone's, the base's password removed."""
    if line.startswith("GRANT ") and f" TO {base}" in line:
        head, _, tail = line.rpartition(f" TO {base}")
        tail = _IDENTIFIED_BY_HASH.sub("", tail, count=1)
        if " IDENTIFIED " in tail:
            raise PermanentError("the base account authenticates by a plugin whose credential "
                                 "akv-rotator does not copy; its grant line cannot be reused")
        if head == "GRANT USAGE ON *.*" and "GRANT OPTION" not in tail:
            # Only the account's options (REQUIRE, resource limits): MariaDB refuses a GRANT on
            # *.* (1045) to an admin without global GRANT OPTION, but ALTER USER sets them.
            return f"ALTER USER {clone}{tail}" if tail.strip() else ""
        return f"{head} TO {clone}{tail}"
    if line.startswith("SET DEFAULT ROLE ") and line.endswith(f" FOR {base}"):
        return line[: -len(base)] + clone
    raise PermanentError(f"a grant of the base account has a form akv-rotator does not copy: "
                         f"{line[:80]!r}")


def _alternate_of(name: str, max_length: int) -> str:
    """``app`` ↔ ``app_clone``, refusing a name longer than the server allows."""
    other = _base_name(name) if name.endswith(CLONE_SUFFIX) else name + CLONE_SUFFIX
    if not other:
        raise SecretNotRotatable(f"login {name!r} has no base name to alternate with")
    longest = max(len(other), len(name))
    if longest > max_length:
        raise SecretNotRotatable(
            f"the alternate login {other!r} would exceed the server's {max_length}-character "
            "user name limit; use a shorter base login")
    return other


def _require_alternates(one: str, other: str) -> None:
    if _alternate_of(one, MARIADB_MAX_USER) != other:
        raise PermanentError(f"logins {one!r} and {other!r} are not an alternating pair")


def _base_name(username: str) -> str:
    return username[: -len(CLONE_SUFFIX)] if username.endswith(CLONE_SUFFIX) else username


def _server(conn: Any) -> _Server:
    rows = _query(conn, "SELECT VERSION()")
    return _Server(str(rows[0][0]) if rows else "")


def _current_user(conn: Any, doing: str) -> str:
    try:
        rows = _query(conn, "SELECT CURRENT_USER()")
    except pymysql.MySQLError as exc:
        raise _translate(exc, doing) from exc
    return str(rows[0][0]) if rows else ""


def _query(conn: Any, statement: str, args: tuple[object, ...] | None = None) -> list[tuple[Any, ...]]:
    with conn.cursor() as cur:
        cur.execute(statement, args)
        return list(cur.fetchall())


def _execute(conn: Any, statement: str) -> None:
    """Run a statement already composed with escaping; never interpolated again (no args)."""
    with conn.cursor() as cur:
        cur.execute(statement)


def _text(value: object) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value or "")


def _message(exc: pymysql.MySQLError) -> str:
    """The server's words, without anything that can quote a statement back (and a secret)."""
    args = exc.args
    code = args[0] if args and isinstance(args[0], int) else None
    if code == ER.PARSE_ERROR:
        return f"({code}) syntax error"
    text = str(args[1]) if len(args) > 1 else type(exc).__name__
    return f"({code}) {text}" if code is not None else text


def _translate(exc: pymysql.MySQLError, doing: str) -> RotatorError:
    """Map PyMySQL's error onto our tree. Messages never quote a statement (see _message)."""
    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else 0
    message = _message(exc)
    lowered = message.lower()
    if code == CR.CR_SSL_CONNECTION_ERROR or (code >= CR.CR_ERROR_FIRST
                                             and any(m in lowered for m in _UNPROTECTED)):
        return PermanentError(f"MySQL connection refused as unprotected when {doing}: {message} "
                              "(akv-rotator never falls back to weaker protection)")
    if code in _DENIED:
        return AccessDenied(f"MySQL refused {doing}: {message}")
    if code in _NO_PRIVILEGE:
        return PermanentError(f"MySQL refused {doing} for lack of a privilege: {message}")
    if code == ER.BAD_DB_ERROR:
        return SecretNotRotatable(f"MySQL target is misconfigured when {doing}: {message}")
    if code >= CR.CR_ERROR_FIRST or isinstance(exc, pymysql.err.InterfaceError):
        return TransientError(f"MySQL unavailable when {doing}: {message}")
    return PermanentError(f"MySQL rejected {doing}: {message}")
