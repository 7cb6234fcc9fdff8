"""Duplicates, concurrency and leases across worker processes, on the single-user kits.

What is at stake is the journal's lease and the engine's duplicate handling; each target
kind's part is its logins, so one strategy per kind is enough.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest
from azure.keyvault.secrets import SecretClient

from rotation.journal import Journal
from tests.protocol.conftest import (
    LEASE_SECONDS,
    Worker,
    credential_of,
    only_rotation,
    pending_versions,
)
from tests.support.kits import Kit, Secret, kit_names
from twins.keyvault import KeyVaultTwin

SINGLE_USER_KITS = kit_names("single-user")


@pytest.mark.parametrize("kit", SINGLE_USER_KITS, indirect=True)
def test_duplicate_storm_rotates_exactly_once(
    kit: Kit, worker_for: Callable[[Secret], Worker], kv: SecretClient, journal: Journal,
    twin: KeyVaultTwin,
) -> None:
    secret = kit.make_secret()
    worker = worker_for(secret)
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
    assert len(list(kv.list_properties_of_secret_versions(secret.name))) == 2
    record = only_rotation(journal, twin, secret)
    assert record.status == "succeeded"
    assert kit.logs_in(*credential_of(kv, secret.name))
    assert pending_versions(kv, secret) == [False]


@pytest.mark.parametrize("kit", SINGLE_USER_KITS, indirect=True)
def test_a_dead_workers_lease_is_honoured_until_it_expires(
    kit: Kit, worker_for: Callable[[Secret], Worker], kv: SecretClient, journal: Journal,
    twin: KeyVaultTwin,
) -> None:
    secret = kit.make_secret()
    worker = worker_for(secret)
    assert worker.deliver(fault="applied:effect:kill").returncode == -9
    held = only_rotation(journal, twin, secret)
    assert held.lease_owner and held.lease_until

    early = worker.deliver()  # the lease has not expired: not taken over, retried later
    assert early.returncode == 1 and '"error": "TransientError"' in early.stdout
    untouched = only_rotation(journal, twin, secret)
    assert (untouched.step, untouched.attempts, untouched.lease_owner) == (
        held.step, held.attempts, held.lease_owner)

    time.sleep(LEASE_SECONDS + 0.3)
    late = worker.deliver()
    assert late.returncode == 0, late.stdout + late.stderr
    record = only_rotation(journal, twin, secret)
    assert record.status == "succeeded" and record.attempts == 2
    assert record.lease_owner is None or record.lease_owner != held.lease_owner
    assert kit.logs_in(*credential_of(kv, secret.name))
    assert not kit.logs_in(secret.role, secret.password)
