"""Fault injection at every step boundary, in separate worker processes.

A first worker raises, or is killed with SIGKILL, at a chosen boundary of a chosen step; the
invariant is checked right then; a second worker (the event redelivered, or the sweeper)
carries on. In every case the end state is the same: exactly one new current version that
logs in, the previous credential ended as the strategy says, the pending credential cleared,
the journal complete, and no second rotation.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest
from azure.keyvault.secrets import SecretClient

from rotation.journal import Journal
from rotation.journal.model import STEPS
from tests.protocol.conftest import (
    ADMIN_SECRET,
    ADMIN_TARGET,
    LEASE_SECONDS,
    Login,
    Worker,
    assert_invariant,
    credential_of,
    only_rotation,
    pending_versions,
)
from tests.support.postgres import PostgresServer
from twins.keyvault import KeyVaultTwin

FAULT_STEPS = [step for step in STEPS if step != "started"]
CASES = [(step, point, mode) for step in FAULT_STEPS for point in ("before", "effect")
         for mode in ("kill", "raise")]


def fail_first_worker(worker: Worker, fault: str, mode: str) -> None:
    """The first worker dies or raises at the fault. Before promote a raise fails the event,
    so Event Grid redelivers; after promote the rotation has taken effect, so the event is
    acknowledged and the rotation is parked as cleanup-pending for the sweeper."""
    first = worker.deliver(fault=fault)
    step = fault.split(":", maxsplit=1)[0]
    if mode == "kill":
        assert first.returncode == -9, first.stdout + first.stderr
    elif STEPS.index(step) > STEPS.index("promoted"):
        assert first.returncode == 0, first.stdout + first.stderr
        assert '"outcome": "cleanup-pending"' in first.stderr
    else:
        assert first.returncode == 1, first.stdout + first.stderr
        assert '"error": "InjectedFault"' in first.stdout


def assert_completed(kv: SecretClient, postgres: PostgresServer, journal: Journal,
                     twin: KeyVaultTwin, login: Login, *, expected_user: str) -> None:
    versions = [v.version for v in kv.list_properties_of_secret_versions(login.name)]
    assert len(versions) == 2, "exactly one new version"
    user, password = credential_of(kv, login.name)
    assert user == expected_user
    assert postgres.can_login(user, password)
    assert not postgres.can_login(login.role, login.password), "the previous credential ended"
    assert pending_versions(kv, login) == [False], "one pending version, cleared"
    record = only_rotation(journal, twin, login)
    assert record.status == "succeeded" and record.step == "finished"
    assert [t.step for t in record.steps] == FAULT_STEPS
    assert record.new_version == kv.get_secret(login.name).properties.version
    assert record.attempts == 2


@pytest.mark.parametrize(("step", "point", "mode"), CASES)
def test_single_user_survives_a_fault_at_every_boundary(
    step: str, point: str, mode: str, make_login: Callable[..., Login],
    worker_for: Callable[[Login], Worker], kv: SecretClient, postgres: PostgresServer,
    journal: Journal, twin: KeyVaultTwin,
) -> None:
    login = make_login()
    worker = worker_for(login)
    fail_first_worker(worker, f"{step}:{point}:{mode}", mode)
    assert_invariant(kv, postgres, journal, twin, login)
    record = only_rotation(journal, twin, login)
    assert not record.finished and record.attempts == 1
    if mode == "kill":
        time.sleep(LEASE_SECONDS + 0.3)  # the dead worker's lease must run out first
    # Alternate who picks it up: Event Grid's redelivery, or the timer's sweeper.
    second = worker.sweep() if FAULT_STEPS.index(step) % 2 else worker.deliver()
    assert second.returncode == 0, second.stdout + second.stderr
    assert_invariant(kv, postgres, journal, twin, login)
    assert_completed(kv, postgres, journal, twin, login, expected_user=login.role)


ADMIN = ADMIN_SECRET


@pytest.fixture
def admin(postgres: PostgresServer, kv: SecretClient) -> str:
    postgres.create_role("faults_admin", "Faults-Admin-Passw0rd", createrole=True)
    kv.set_secret(ADMIN, json.dumps({"username": "faults_admin",
                                     "password": "Faults-Admin-Passw0rd"}),
                  content_type="application/json")
    return ADMIN


@pytest.mark.parametrize("step", FAULT_STEPS)
def test_alternating_users_survive_a_kill_mid_step(
    step: str, admin: str, make_login: Callable[..., Login],
    worker_for: Callable[[Login], Worker], kv: SecretClient, postgres: PostgresServer,
    journal: Journal, twin: KeyVaultTwin,
) -> None:
    login = make_login({"rotator-target": ADMIN_TARGET})
    worker = worker_for(login)
    fail_first_worker(worker, f"{step}:effect:kill", "kill")
    assert_invariant(kv, postgres, journal, twin, login)
    time.sleep(LEASE_SECONDS + 0.3)
    second = worker.deliver()
    assert second.returncode == 0, second.stdout + second.stderr
    assert_completed(kv, postgres, journal, twin, login, expected_user=f"{login.role}_clone")
