"""Duplicates, concurrency and leases across worker processes."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from azure.keyvault.secrets import SecretClient

from rotation.journal import Journal
from tests.protocol.conftest import (
    LEASE_SECONDS,
    Login,
    Worker,
    credential_of,
    only_rotation,
    pending_versions,
)
from tests.support.postgres import PostgresServer
from twins.keyvault import KeyVaultTwin


def test_duplicate_storm_rotates_exactly_once(
    make_login: Callable[..., Login], worker_for: Callable[[Login], Worker],
    kv: SecretClient, postgres: PostgresServer, journal: Journal, twin: KeyVaultTwin,
) -> None:
    login = make_login()
    worker = worker_for(login)
    # Nobody dies here, so a long lease: a slow machine must not let a live worker's lease
    # lapse (that is the lease-expiry test's business, not this one's).
    worker.env = {**worker.env, "ROTATOR_LEASE_SECONDS": "60"}
    workers = [worker.start(repeat=10) for _ in range(4)]  # 40 deliveries of one event
    outcomes: list[dict[str, object]] = []
    for process in workers:
        stdout, stderr = process.communicate(timeout=180)
        worker.record(stdout, stderr)
        outcomes += [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
        assert process.returncode in (0, 1), stderr
    assert len(outcomes) == 40
    # A delivery that met the rotation in progress elsewhere asks Event Grid to retry.
    assert {o.get("error") for o in outcomes if not o["ok"]} <= {"TransientError"}
    assert len(list(kv.list_properties_of_secret_versions(login.name))) == 2
    record = only_rotation(journal, twin, login)
    assert record.status == "succeeded"
    assert postgres.can_login(*credential_of(kv, login.name))
    assert pending_versions(kv, login) == [False]


def test_a_dead_workers_lease_is_honoured_until_it_expires(
    make_login: Callable[..., Login], worker_for: Callable[[Login], Worker],
    kv: SecretClient, postgres: PostgresServer, journal: Journal, twin: KeyVaultTwin,
) -> None:
    login = make_login()
    worker = worker_for(login)
    assert worker.deliver(fault="applied:effect:kill").returncode == -9
    held = only_rotation(journal, twin, login)
    assert held.lease_owner and held.lease_until

    early = worker.deliver()  # the lease has not expired: not taken over, retried later
    assert early.returncode == 1 and '"error": "TransientError"' in early.stdout
    untouched = only_rotation(journal, twin, login)
    assert (untouched.step, untouched.attempts, untouched.lease_owner) == (
        held.step, held.attempts, held.lease_owner)

    time.sleep(LEASE_SECONDS + 0.3)
    late = worker.deliver()
    assert late.returncode == 0, late.stdout + late.stderr
    record = only_rotation(journal, twin, login)
    assert record.status == "succeeded" and record.attempts == 2
    assert record.lease_owner is None or record.lease_owner != held.lease_owner
    assert postgres.can_login(*credential_of(kv, login.name))
    assert not postgres.can_login(login.role, login.password)
