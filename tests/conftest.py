"""Shared fixtures: real servers started once per session, global state reset per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.postgres import PostgresServer, find_pg_bin, running_postgres


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """Debian's PostgreSQL on loopback with scram passwords, for the whole session."""
    pg_bin = find_pg_bin()
    if pg_bin is None:
        pytest.fail("PostgreSQL server binaries not found: run scripts/install-system-deps.sh "
                    "(Debian package 'postgresql') or set ROTATOR_TEST_PG_BIN")
    with running_postgres(pg_bin) as server:
        yield server
