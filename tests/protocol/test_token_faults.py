"""Fault injection on the API-token targets, in worker processes: Jenkins (the twin) and the
real NetBox.

A first worker is killed with SIGKILL after the effect of every step, or is killed or raises
inside prepare between the server's answer and the pending write (``prepared:minted``: the
server holds a token nobody stored). A second worker (the event redelivered, or the sweeper)
finishes. After any crash the current Key Vault version's token authenticates; at the end
exactly one new version holds a working token, the previous token is refused, the pending
version is cleared, and what is left on the server is what the issue allows: nothing on
NetBox (strays are found by description and deleted), at most the one reported leftover on
Jenkins, and none where the operator's target says the tokens are the rotator's alone.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from azure.keyvault.secrets import SecretClient

from rotation.journal import Journal
from rotation.journal.model import Step
from tests.protocol.conftest import (
    LEASE_SECONDS,
    Worker,
    assert_invariant,
    credential_of,
    only_rotation,
    pending_versions,
)
from tests.protocol.test_fault_injection import FAULT_STEPS, fail_first_worker
from tests.support.kits import Secret
from tests.support.token_kits import TokenKit
from twins.jenkins import JenkinsTwin
from twins.keyvault import KeyVaultTwin

MINTED: list[tuple[str, str, str]] = [("prepared", "minted", "kill"), ("prepared", "minted", "raise")]
CASES = [
    pytest.param(name, step, point, mode, id=f"{name}-{step}-{point}-{mode}")
    for name in ("jenkins-overlap", "netbox-overlap")
    for step, point, mode in [*((s, "effect", "kill") for s in FAULT_STEPS), *MINTED]
] + [pytest.param("jenkins-exclusive", "prepared", "minted", "kill",
                  id="jenkins-exclusive-prepared-minted-kill")]


@pytest.fixture
def jenkins_twin(tmp_path: Path) -> Iterator[JenkinsTwin]:
    """A Jenkins twin the worker processes reach over HTTPS."""
    with JenkinsTwin(cert_dir=tmp_path / "jenkins") as twin:
        yield twin


@pytest.mark.parametrize(("kit", "step", "point", "mode"), CASES, indirect=["kit"])
def test_a_crash_never_leaves_a_token_that_does_not_work(
    kit: TokenKit, step: Step, point: str, mode: str, worker_for: Callable[[Secret], Worker],
    kv: SecretClient, journal: Journal, twin: KeyVaultTwin,
) -> None:
    secret = kit.make_secret()
    worker = worker_for(secret)
    fail_first_worker(worker, f"{step}:{point}:{mode}", mode)
    assert_invariant(kv, kit, journal, twin, secret)
    assert kit.logs_in(*credential_of(kv, secret.name)), "the current version still works"
    if mode == "kill":
        time.sleep(LEASE_SECONDS + 0.3)  # the dead worker's lease must run out first
    second = worker.sweep() if FAULT_STEPS.index(step) % 2 else worker.deliver()
    assert second.returncode == 0, second.stdout + second.stderr

    versions = [v.version for v in kv.list_properties_of_secret_versions(secret.name)]
    assert len(versions) == 2, "exactly one new version"
    user, token = credential_of(kv, secret.name)
    assert user == secret.role and kit.logs_in(user, token)
    assert not kit.logs_in(secret.role, secret.password), "the previous token was revoked"
    assert pending_versions(kv, secret) == [False], "one pending version, cleared"
    record = only_rotation(journal, twin, secret)
    assert record.status == "succeeded" and record.attempts == 2
    assert [t.step for t in record.steps] == FAULT_STEPS
    minted_by_us = f"akv-rotator {record.rotation_id}"
    stray_reported = point == "minted" and kit.kind == "jenkins" and not kit.exclusive
    assert kit.tokens(user) == [minted_by_us] * (2 if stray_reported else 1)
    assert (record.leftovers is not None) == stray_reported
