"""Fault injection at every step boundary, in separate worker processes, on every target kit.

A first worker raises, or is killed with SIGKILL, at a chosen boundary of a chosen step; the
invariant is checked right then; a second worker (the event redelivered, or the sweeper)
carries on. In every case the end state is the same: exactly one new current version that
logs in, the previous credential ended as the strategy says, the pending credential cleared,
the journal complete, and no second rotation.

Which faults each kit meets at every step (:data:`SHAPES`): ``postgresql-single-user`` is
the reference and meets both faults at both boundaries of every step. Every other kit meets
both faults mid-step, after the step's effect: the target has changed and nothing is
journaled, so the second worker repeats the step on a target that already holds its effect
(``apply`` and ``retire`` run twice, ``verify`` and the ownership proof after them). Before
a step the target holds exactly what the journal says, and a fault there is the engine's
business (the lease, the attempt count, who resumes), the same for every target: proved on
the reference alone, it keeps the suite's time down, since each kill costs a lease of
waiting before the second worker may take over.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from azure.keyvault.secrets import SecretClient

from rotation.journal import Journal
from rotation.journal.model import STEPS, Step
from tests.protocol.conftest import (
    LEASE_SECONDS,
    Worker,
    assert_announced_once,
    assert_invariant,
    credential_of,
    only_rotation,
    pending_versions,
)
from tests.support.kits import KITS, Kit, Secret
from twins.eventgrid import EventGridTwin
from twins.keyvault import KeyVaultTwin

FAULT_STEPS: list[Step] = [step for step in STEPS if step != "started"]
Shape = tuple[str, str]  # (point, mode)
EVERY_FAULT: list[Shape] = [(point, mode) for point in ("before", "effect")
                            for mode in ("kill", "raise")]
MID_STEP: list[Shape] = [("effect", "kill"), ("effect", "raise")]
#: The faults a kit meets at every step; a kit not named here meets MID_STEP.
SHAPES: dict[str, list[Shape]] = {"postgresql-single-user": EVERY_FAULT}
CASES = [
    pytest.param(name, step, point, mode, id=f"{name}-{step}-{point}-{mode}")
    for name in KITS
    for step in FAULT_STEPS
    for point, mode in SHAPES.get(name, MID_STEP)
]


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


def assert_completed(kv: SecretClient, kit: Kit, journal: Journal, twin: KeyVaultTwin,
                     secret: Secret) -> None:
    versions = [v.version for v in kv.list_properties_of_secret_versions(secret.name)]
    assert len(versions) == 2, "exactly one new version"
    user, password = credential_of(kv, secret.name)
    alternating = kit.strategy == "alternating-users"
    assert user == (f"{secret.role}_clone" if alternating else secret.role)
    assert kit.logs_in(user, password)
    # Single user: the old password is refused. Alternating users: the previous login is
    # retired (PostgreSQL: its password replaced; MariaDB: ACCOUNT LOCK).
    assert not kit.logs_in(secret.role, secret.password), "the previous credential ended"
    assert pending_versions(kv, secret) == [False], "one pending version, cleared"
    record = only_rotation(journal, twin, secret)
    assert record.status == "succeeded" and record.step == "finished"
    assert [t.step for t in record.steps] == FAULT_STEPS
    assert record.new_version == kv.get_secret(secret.name).properties.version
    assert record.attempts == 2


@pytest.mark.parametrize(("kit", "step", "point", "mode"), CASES, indirect=["kit"])
def test_a_fault_at_a_step_boundary_is_survived(
    kit: Kit, step: Step, point: str, mode: str, worker_for: Callable[[Secret], Worker],
    kv: SecretClient, journal: Journal, twin: KeyVaultTwin, topic: EventGridTwin,
) -> None:
    secret = kit.make_secret()
    worker = worker_for(secret)
    fail_first_worker(worker, f"{step}:{point}:{mode}", mode)
    assert_invariant(kv, kit, journal, twin, secret)
    record = only_rotation(journal, twin, secret)
    assert not record.finished and record.attempts == 1
    if mode == "kill":
        time.sleep(LEASE_SECONDS + 0.3)  # the dead worker's lease must run out first
    # Alternate who picks it up: Event Grid's redelivery, or the timer's sweeper.
    second = worker.sweep() if FAULT_STEPS.index(step) % 2 else worker.deliver()
    assert second.returncode == 0, second.stdout + second.stderr
    assert_invariant(kv, kit, journal, twin, secret)
    assert_completed(kv, kit, journal, twin, secret)
    assert_announced_once(topic, only_rotation(journal, twin, secret))
