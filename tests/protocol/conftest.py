"""Workers in separate processes, a real Azure Table journal on Azurite, the twin, a database.

Each test gets a fresh twin and its own journal table, and runs the Functions app in worker
processes (``tests/support/worker.py``) that it can kill with SIGKILL mid-step. The database
is a kit's (``tests/support/kits.py``): a test names the kits it runs on with an indirect
``kit`` parameter, and the workers' ``ROTATOR_TARGETS`` declares that kit's target only.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from azure.keyvault.secrets import SecretClient

from rotation.journal import Journal, open_journal
from rotation.journal.model import RotationRecord
from rotation.pending import pending_name
from tests.support.kits import Kit, Secret, kit_spec, make_kit
from tests.support.leaks import Said, leaks, secret_material
from tests.support.payloads import load_payload, retarget
from twins.eventgrid import EventGridTwin
from twins.keyvault import KeyVaultTwin

ROOT = Path(__file__).resolve().parents[2]
LEASE_SECONDS = 6.0  # at least 3 x the longest client timeout (2 s)


@pytest.fixture
def table_name() -> str:
    return "rot" + uuid.uuid4().hex[:20]


@pytest.fixture
def kit(request: pytest.FixtureRequest, kv: SecretClient) -> Kit:
    """The kit named by the test's indirect ``kit`` parameter, prepared on its server."""
    name: str = request.param
    return make_kit(name, kv, request.getfixturevalue(kit_spec(name).server))


@pytest.fixture
def topic(tmp_path: Path) -> Iterator[EventGridTwin]:
    """The Event Grid topic the workers publish rotation events to."""
    with EventGridTwin(cert_dir=tmp_path / "eventgrid") as running:
        yield running


@pytest.fixture
def worker_env(twin: KeyVaultTwin, azurite: str, table_name: str, kit: Kit,
               topic: EventGridTwin) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("ROTATOR_", "APPLICATIONINSIGHTS_"))}
    env.update({
        "PYTHONPATH": str(ROOT),
        "ROTATOR_VAULTS": f"{twin.vault_name}={twin.url}",
        "ROTATOR_KEYVAULT_AUTH": "static-token",
        "ROTATOR_KEYVAULT_STATIC_TOKEN": "worker-token",
        "ROTATOR_KEYVAULT_CA_BUNDLE": str(twin.ca_path),
        "ROTATOR_JOURNAL": "table",
        "ROTATOR_JOURNAL_TABLE": table_name,
        "AzureWebJobsStorage": azurite,
        "ROTATOR_LEASE_SECONDS": str(LEASE_SECONDS),
        "ROTATOR_ATTEMPT_BACKOFF_SECONDS": "0",
        "ROTATOR_MAX_ATTEMPTS": "5",
        "ROTATOR_RETRY_ATTEMPTS": "2",
        "ROTATOR_RETRY_INITIAL_SECONDS": "0.01",
        "ROTATOR_RETRY_MAX_SECONDS": "0.05",
        "ROTATOR_CONNECT_TIMEOUT_SECONDS": "2",
        "ROTATOR_KEYVAULT_TIMEOUT_SECONDS": "2",
        "ROTATOR_GRACE_HOURS": "0",
        "ROTATOR_LOG_LEVEL": "INFO",
        "ROTATOR_TARGETS": json.dumps({kit.target: kit.declaration()}),
        "ROTATOR_EVENTS_ENDPOINT": topic.topic_endpoint,
        "ROTATOR_EVENTS_CA_BUNDLE": str(topic.ca_path),
    })
    return env


@pytest.fixture
def journal(azurite: str, table_name: str) -> Journal:
    """The same journal the workers write, read from the test process."""
    return open_journal(f"table:{table_name}:{azurite}")


@dataclass
class Worker:
    """Starts worker processes with the test's settings; keeps everything they printed."""

    env: dict[str, str]
    payload: Path
    output: list[str]

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([sys.executable, "-m", "tests.support.worker", *args],
                              cwd=ROOT, env=self.env, capture_output=True, text=True,
                              timeout=120, check=False)
        self.output += [done.stdout, done.stderr]
        return done

    def deliver(self, fault: str | None = None, repeat: int = 1) -> subprocess.CompletedProcess[str]:
        args = ["--payload", str(self.payload), "--repeat", str(repeat)]
        return self.run(*args, *(["--fault", fault] if fault else []))

    def sweep(self, fault: str | None = None) -> subprocess.CompletedProcess[str]:
        return self.run("--sweep", *(["--fault", fault] if fault else []))

    def start(self, repeat: int) -> subprocess.Popen[str]:
        """A worker left running; the caller passes what it printed to :meth:`record`."""
        return subprocess.Popen(
            [sys.executable, "-m", "tests.support.worker", "--payload", str(self.payload),
             "--repeat", str(repeat)],
            cwd=ROOT, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def record(self, *texts: str) -> None:
        self.output += texts


@pytest.fixture
def worker_for(worker_env: dict[str, str], twin: KeyVaultTwin, kv: SecretClient,
               tmp_path: Path) -> Iterator[Callable[[Secret], Worker]]:
    """Workers for a secret; at teardown, no secret value may appear in anything they printed."""
    output: list[str] = []

    def make(secret: Secret) -> Worker:
        payload = tmp_path / f"{secret.name}.json"
        payload.write_text(json.dumps(retarget(load_payload("near_expiry_pascal"),
                                               vault=twin.vault_name, secret=secret.name,
                                               version=secret.version)))
        return Worker(worker_env, payload, output)

    yield make
    twin.clear_faults()
    found = leaks(Said(log_lines=output), secret_material(kv))
    assert not found, f"secret values appeared in worker output: {found}"


def only_rotation(journal: Journal, twin: KeyVaultTwin, secret: Secret) -> RotationRecord:
    records = journal.for_secret(twin.vault_name, secret.name)
    assert len(records) == 1, [r.rotation_id for r in records]
    return records[0]


def credential_of(kv: SecretClient, name: str, version: str | None = None) -> tuple[str, str]:
    value = json.loads(kv.get_secret(name, version).value or "{}")
    return value["username"], value["password"] if "password" in value else value["token"]


def assert_invariant(kv: SecretClient, kit: Kit, journal: Journal, twin: KeyVaultTwin,
                     secret: Secret) -> None:
    """Either the current version logs in, or the journal names a pending one that does."""
    if kit.logs_in(*credential_of(kv, secret.name)):
        return
    record = only_rotation(journal, twin, secret)
    assert record.pending_version, "the current version fails and no pending credential is named"
    assert kit.logs_in(*credential_of(kv, pending_name(secret.name), record.pending_version))


def pending_versions(kv: SecretClient, secret: Secret) -> list[bool]:
    return [bool(v.enabled)
            for v in kv.list_properties_of_secret_versions(pending_name(secret.name))]


def assert_announced_once(topic: EventGridTwin, record: RotationRecord) -> None:
    """However often the rotation was resumed, one event of each kind, and one succeeded."""
    ids = [p.event["id"] for p in topic.published()]
    assert ids.count(f"{record.rotation_id}.succeeded") == 1, ids
    assert len(ids) == len(set(ids)), ids
