"""The test kit: every registered target kind and strategy, on its real server.

A kit knows how to declare its operator target, create a login with a Key Vault secret bound
to it, tell whether a credential logs in, and change a password behind the rotator's back.
The long-faults harness (``tests/integration/test_long_faults.py``) and the fault-injection
suite (``tests/protocol/``) run on every kit in :data:`KITS`; a new target kind adds its kit
here (docs/writing-a-target.md).
"""

from __future__ import annotations

import json
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import psycopg
import pymysql
from azure.keyvault.secrets import SecretClient
from psycopg import sql

from tests.support.mariadb import MariaDBServer
from tests.support.postgres import PostgresServer
from tests.support.targets import mysql_target, pg_target

ADMIN_SECRET = "kit-admin"
ADMIN_PASSWORD = "Kit-Admin-Passw0rd"
ACCOUNT_LOCKED = 4151  # MariaDB: the right password, refused because the account is locked


@dataclass
class Secret:
    """A login on the kit's server and the Key Vault secret bound to it."""

    name: str
    role: str
    password: str
    version: str


class Kit(ABC):
    """One target kind and strategy on one server, declared as an operator would."""

    kind: str

    def __init__(self, strategy: str, kv: SecretClient) -> None:
        self.strategy = strategy
        self.kv = kv

    @property
    def target(self) -> str:
        return f"kit-{self.kind}-{self.strategy}"

    @property
    def needs_admin(self) -> bool:
        return self.strategy == "alternating-users"

    def make_secret(self) -> Secret:
        """A fresh login (unique name: leftovers of earlier tests never interfere)."""
        role = f"k_{uuid.uuid4().hex[:12]}"
        password = f"First-{role}-Passw0rd"
        self.create_login(role, password)
        name = f"db-{role.replace('_', '-')}"
        stored = self.kv.set_secret(name, json.dumps({"username": role, "password": password}),
                                    content_type="application/json",
                                    tags={"rotator-target": self.target})
        return Secret(name, role, password, stored.properties.version or "")

    def store_admin(self, username: str) -> None:
        self.kv.set_secret(ADMIN_SECRET, json.dumps({"username": username,
                                                     "password": ADMIN_PASSWORD}),
                           content_type="application/json")

    @abstractmethod
    def declaration(self) -> dict[str, Any]: ...

    @abstractmethod
    def prepare(self) -> None:
        """Create what every secret of the kit needs (the admin login)."""

    @abstractmethod
    def create_login(self, role: str, password: str) -> None: ...

    @abstractmethod
    def logs_in(self, user: str, password: str) -> bool: ...

    @abstractmethod
    def set_password_by_hand(self, role: str, password: str) -> None: ...


class PostgresKit(Kit):
    kind = "postgresql"

    def __init__(self, strategy: str, kv: SecretClient, server: PostgresServer) -> None:
        super().__init__(strategy, kv)
        self.server = server

    def declaration(self) -> dict[str, Any]:
        return pg_target(self.server, admin=ADMIN_SECRET if self.needs_admin else None,
                         strategies=[self.strategy])

    def prepare(self) -> None:
        self.server.create_role("kit_admin", ADMIN_PASSWORD, createrole=True)
        self.store_admin("kit_admin")

    def create_login(self, role: str, password: str) -> None:
        self.server.create_role(role, password)
        if self.needs_admin:
            self._superuser(sql.SQL("GRANT {} TO kit_admin WITH ADMIN OPTION").format(
                sql.Identifier(role)))

    def logs_in(self, user: str, password: str) -> bool:
        return self.server.can_login(user, password)

    def set_password_by_hand(self, role: str, password: str) -> None:
        self._superuser(sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(role),
                                                                     sql.Literal(password)))

    def _superuser(self, statement: sql.Composed) -> None:
        with psycopg.connect(self.server.admin_conninfo, autocommit=True) as conn:
            conn.execute(statement)


class MariaDBKit(Kit):
    kind = "mysql"

    def __init__(self, strategy: str, kv: SecretClient, server: MariaDBServer) -> None:
        super().__init__(strategy, kv)
        self.server = server

    def declaration(self) -> dict[str, Any]:
        return mysql_target(self.server, admin=ADMIN_SECRET if self.needs_admin else None,
                            strategies=[self.strategy])

    def prepare(self) -> None:
        self.server.create_user("kit_admin", ADMIN_PASSWORD, privileges=("CREATE USER",))
        self._root("GRANT SELECT ON mysql.* TO %s@'%%'", "kit_admin")
        self.store_admin("kit_admin")

    def create_login(self, role: str, password: str) -> None:
        self.server.create_user(role, password)

    def logs_in(self, user: str, password: str) -> bool:
        """False for a refused password and for a locked (retired) account alike."""
        try:
            return self.server.can_login(user, password)
        except pymysql.err.OperationalError as exc:
            if exc.args and exc.args[0] == ACCOUNT_LOCKED:
                return False
            raise

    def set_password_by_hand(self, role: str, password: str) -> None:
        self._root("ALTER USER %s@'%%' IDENTIFIED BY %s", role, password)

    def _root(self, statement: str, *args: object) -> None:
        with self.server.admin() as conn, conn.cursor() as cur:
            cur.execute(statement, args or None)


class KitSpec(NamedTuple):
    """How to build one kit: its server's session fixture, its class, its strategy."""

    server: str  # "postgres" or "mariadb" (tests/conftest.py)
    make: Callable[[str, SecretClient, Any], Kit]  # (strategy, kv, server) -> the kit
    strategy: str


#: Every kit the harnesses run, by name (the name is the tests' parameter id).
KITS: dict[str, KitSpec] = {
    "postgresql-single-user": KitSpec("postgres", PostgresKit, "single-user"),
    "postgresql-alternating-users": KitSpec("postgres", PostgresKit, "alternating-users"),
    "mysql-single-user": KitSpec("mariadb", MariaDBKit, "single-user"),
    "mysql-alternating-users": KitSpec("mariadb", MariaDBKit, "alternating-users"),
}


def kit_names(strategy: str | None = None) -> list[str]:
    """The names in :data:`KITS`, or only those of one strategy."""
    return [name for name, spec in KITS.items() if strategy in (None, spec.strategy)]


def kit_spec(name: str) -> KitSpec:
    """A kit of :data:`KITS`, or a token kit (``tests/support/token_kits.py``)."""
    if name in KITS:
        return KITS[name]
    from tests.support.token_kits import TOKEN_KITS  # the token kits build on this module

    return TOKEN_KITS[name]


def make_kit(name: str, kv: SecretClient, server: Any) -> Kit:
    """The kit ``name`` on ``server`` (its session fixture's, or a dedicated one), prepared."""
    spec = kit_spec(name)
    made = spec.make(spec.strategy, kv, server)
    made.prepare()
    return made
