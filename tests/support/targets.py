"""Operator target declarations for tests, as an operator would write ``ROTATOR_TARGETS``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rotation.catalogue import TargetCatalogue
from rotation.ids import VaultName
from rotation.secret_value import Credential
from rotation.targets.base import TargetContext
from tests.support.mariadb import MariaDBServer
from tests.support.postgres import PostgresServer

DEFAULT_TARGET = "test-pg"


def pg_target(postgres: PostgresServer, *, admin: str | None = None,
              strategies: list[str] | None = None, logins: list[str] | None = None,
              secrets: list[str] | None = None, recovery: bool = False,
              parity: str | None = None) -> dict[str, Any]:
    """A PostgreSQL target on the test server, over verified TLS with the test CA."""
    target: dict[str, Any] = {
        "kind": "postgresql",
        "address": postgres.tcp_address(),
        "tls": {"mode": "verify-full", "caBundle": str(postgres.ca_path)},
        "logins": logins or ["*"],
        "secrets": secrets or ["db-*"],
    }
    if admin is not None:
        target["adminSecret"] = admin
    if strategies is not None:
        target["strategies"] = strategies
    if recovery:
        target["allowPasswordRecovery"] = True
    if parity is not None:
        target["privilegeParity"] = parity
    return target


def targets_setting(postgres: PostgresServer, **extra: dict[str, Any]) -> str:
    """``ROTATOR_TARGETS``: the default target plus ``extra`` targets by id (``_`` → ``-``)."""
    targets = {DEFAULT_TARGET: pg_target(postgres)}
    targets.update({name.replace("_", "-"): spec for name, spec in extra.items()})
    return json.dumps(targets)


def pg_context(postgres: PostgresServer, strategy: str = "single-user", *,
               admin: Credential | None = None, address: str | None = None) -> TargetContext:
    """A target context as the engine builds it, from a definition parsed like the operator's."""
    spec = pg_target(postgres, admin="kv-test/pg-admin" if admin else None,
                     strategies=[strategy])
    if address is not None:
        spec["address"] = address
    return context_of(spec, strategy, admin=admin)


def mysql_target(mariadb: MariaDBServer, *, admin: str | None = None,
                 strategies: list[str] | None = None, account_host: str | None = None,
                 ca_path: str | None = None, address: str | None = None) -> dict[str, Any]:
    """A ``mysql`` target on the test MariaDB, over verified TLS with the test CA."""
    target: dict[str, Any] = {
        "kind": "mysql",
        "address": address or f"mysql://127.0.0.1:{mariadb.port}",
        "tls": {"mode": "verify-full", "caBundle": ca_path or str(mariadb.ca_path)},
        "logins": ["*"],
        "secrets": ["db-*"],
    }
    if admin is not None:
        target["adminSecret"] = admin
    if strategies is not None:
        target["strategies"] = strategies
    if account_host is not None:
        target["accountHost"] = account_host
    return target


def mysql_context(mariadb: MariaDBServer, strategy: str = "single-user", *,
                  admin: Credential | None = None, account_host: str | None = None,
                  ca_path: str | None = None, address: str | None = None) -> TargetContext:
    """A ``mysql`` target context as the engine builds it, parsed like the operator's."""
    spec = mysql_target(mariadb, admin="kv-test/mysql-admin" if admin else None,
                        strategies=[strategy], account_host=account_host, ca_path=ca_path,
                        address=address)
    return context_of(spec, strategy, admin=admin)


def token_target(kind: str, url: str, ca_path: Path | str, *, exclusive: bool | None = None,
                 logins: list[str] | None = None, secrets: list[str] | None = None) -> dict[str, Any]:
    """A ``jenkins`` or ``netbox`` target at ``url``, over TLS verified with ``ca_path``."""
    target: dict[str, Any] = {
        "kind": kind, "address": url, "tls": {"mode": "verify-full", "caBundle": str(ca_path)},
        "logins": logins or ["*"], "secrets": secrets or [f"{kind}-*"],
    }
    if exclusive is not None:
        target["exclusiveTokens"] = exclusive
    return target


def context_of(spec: dict[str, Any], strategy: str, *, admin: Credential | None = None,
               timeout: float = 3) -> TargetContext:
    """A target context as the engine builds it, from ``spec`` parsed like the operator's."""
    problems: list[str] = []
    catalogue = TargetCatalogue.parse({"t": spec}, vaults=(VaultName("kv-test"),),
                                      base_dir=Path.cwd(), source="test", problems=problems)
    assert not problems, problems
    return TargetContext(catalogue.targets["t"], strategy, admin, connect_timeout_seconds=timeout)
