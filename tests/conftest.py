"""Shared fixtures: real servers started once per session, global state reset per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.keyvault.secrets import SecretClient
from azure.keyvault.secrets._shared import http_challenge_cache

from tests.support.azurite import AZURITE_TABLE, running_azurite
from tests.support.mariadb import MariaDBServer, find_mariadb_bin, running_mariadb
from tests.support.netbox import NetBoxServer, installed_netbox, running_netbox
from tests.support.postgres import PostgresServer, find_pg_bin, running_postgres
from twins.keyvault import KeyVaultTwin


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """Debian's PostgreSQL on loopback with scram passwords, for the whole session."""
    pg_bin = find_pg_bin()
    if pg_bin is None:
        pytest.fail("PostgreSQL server binaries not found: run scripts/install-system-deps.sh "
                    "(Debian package 'postgresql') or set ROTATOR_TEST_PG_BIN")
    with running_postgres(pg_bin) as server:
        yield server


@pytest.fixture(scope="session")
def mariadb() -> Iterator[MariaDBServer]:
    """Debian's MariaDB on loopback for the whole session, with real passwords.

    TCP logins need TLS (``require_secure_transport=ON``; verify against ``ca_path``); a login
    without TLS is refused even with the right password. The admin logs in without a password
    over the Unix socket only. The general query log and the binary log are on.
    """
    binaries = find_mariadb_bin()
    if binaries is None:
        pytest.fail("MariaDB server binaries (mariadbd, mariadb-install-db, mariadb-binlog) not "
                    "found: run scripts/install-system-deps.sh (Debian package 'mariadb-server') "
                    "or set ROTATOR_TEST_MARIADB_BIN")
    with running_mariadb(binaries) as server:
        yield server


@pytest.fixture(scope="session")
def netbox(postgres: PostgresServer) -> Iterator[NetBoxServer]:
    """NetBox 4.7 from PyPI over HTTPS for the whole session, on the session's PostgreSQL.

    Its own Python 3.12 virtualenv is built once per machine by `make netbox-deps`; the schema
    comes from the committed dump, not 8 minutes of migrations, so it answers in about 15 s. A
    superuser ``admin`` with a v2 token is there; see ``NetBoxServer`` for making more.
    """
    install = installed_netbox()
    if install is None:
        pytest.fail("NetBox's virtualenv is missing: run `make netbox-deps` "
                    "(scripts/install-netbox.sh; see docs/netbox-for-tests.md)")
    pg_bin = find_pg_bin()
    assert pg_bin is not None  # the postgres fixture has found it
    with running_netbox(install, postgres, pg_bin) as server:
        yield server


@pytest.fixture(scope="session")
def azurite() -> Iterator[str]:
    """Azurite's Table service for the session; its connection string."""
    if not AZURITE_TABLE.exists():
        pytest.fail(f"{AZURITE_TABLE} is missing: run `npm install --no-audit --no-fund` at the "
                    "repository root (`make test` does it) to install Azurite")
    with running_azurite() as connection_string:
        yield connection_string


@pytest.fixture
def twin(tmp_path: Path) -> Iterator[KeyVaultTwin]:
    """A fresh Key Vault twin per test (the SDK's challenge cache is per host and port)."""
    http_challenge_cache.clear()
    with KeyVaultTwin(vault_name="kv-test", cert_dir=tmp_path / "twin") as running:
        yield running
    http_challenge_cache.clear()


@pytest.fixture
def kv(twin: KeyVaultTwin) -> SecretClient:
    """A client of the test's own, for arranging and checking vault state."""
    return twin.secret_client()
