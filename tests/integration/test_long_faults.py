"""The invariant under long faults: giving up must never break the current credential.

Every case runs a rotation through the real Functions app against the Key Vault twin and a
real database, with faults that outlast the protocol's patience: Key Vault throttling (429
without Retry-After), 503s, dropped connections and lost responses on each call the rotation
makes, at three intensities (one request; through the in-attempt retries; sustained past the
last attempt). Then the faults are lifted, the sweeper and Event Grid's redelivery run, and
the same end-state checks hold for every case (:func:`assert_world`):

- Key Vault's current version logs in;
- at most one new version per rotation;
- no enabled pending version that no unfinished rotation references;
- the previous credential retired when due (alternating users, no grace);
- every closed record's status and ``lastError`` true to the world.

Every kit (``tests/support/kits.py``: each target kind and strategy) runs every case; the
database down or frozen, versions written by hand, the secret deleted and recovered, and a
step slower than the lease are below.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pytest
from azure.keyvault.secrets import SecretClient

from handlers.services import reset_services, set_step_observer
from rotation.errors import ConfigurationError, TransientError
from rotation.journal.model import RotationRecord, Step
from rotation.pending import pending_name
from rotation.settings import Settings
from tests.integration.conftest import App, near_expiry
from tests.support.kits import KITS, Kit, Secret, make_kit
from tests.support.leaks import CapturingHandler
from tests.support.mariadb import MariaDBProcess, find_mariadb_bin, mariadb_process
from tests.support.postgres import PostgresServer, find_pg_bin, running_postgres
from tests.support.telemetry import metric_points
from twins.keyvault import KeyVaultTwin

RETRY_ATTEMPTS = 3
MAX_ATTEMPTS = 3


# -- the test kit: every registered target kind and strategy runs every case --------------

def _declare(monkeypatch: pytest.MonkeyPatch, *kits: Kit, **env: str) -> None:
    targets = {kit.target: kit.declaration() for kit in kits}
    monkeypatch.setenv("ROTATOR_TARGETS", json.dumps(targets))
    monkeypatch.setenv("ROTATOR_MAX_ATTEMPTS", str(MAX_ATTEMPTS))
    monkeypatch.setenv("ROTATOR_RETRY_ATTEMPTS", str(RETRY_ATTEMPTS))
    monkeypatch.setenv("ROTATOR_GRACE_HOURS", "0")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    reset_services()


@pytest.fixture(params=list(KITS))
def kit(request: pytest.FixtureRequest, app: App, kv: SecretClient,
        monkeypatch: pytest.MonkeyPatch) -> Kit:
    name: str = request.param
    made = make_kit(name, kv, request.getfixturevalue(KITS[name].server))
    _declare(monkeypatch, made)
    return made


# -- driving and checking -----------------------------------------------------------------

def deliver(app: App, event: dict[str, Any], times: int = 1) -> None:
    """Deliver as Event Grid does; a delivery that fails is one Event Grid would retry."""
    for _ in range(times):
        try:
            app.deliver(event)
        except (TransientError, ConfigurationError):
            pass


def recover(app: App, twin: KeyVaultTwin, event: dict[str, Any], secret: str) -> None:
    """Faults lifted: Event Grid redelivers once, then sweeps until nothing is left open."""
    twin.clear_faults()
    deliver(app, event)
    for _ in range(8):
        if not [r for r in records(app, secret) if r["status"] not in CLOSED]:
            return
        app.sweep()
    raise AssertionError(f"still open after the sweeps: {records(app, secret)}")


CLOSED = ("succeeded", "failed", "superseded")


def records(app: App, secret: str) -> list[dict[str, Any]]:
    status, body = app.get(f"secrets/{secret}/rotations", {"name": secret})
    assert status == 200, body
    return list(body["rotations"])


def assert_world(app: App, kv: SecretClient, kit: Kit, secret: Secret) -> None:
    """The end state every case must reach, whatever happened on the way."""
    current = kv.get_secret(secret.name)
    value = json.loads(current.value or "{}")
    assert kit.logs_in(value["username"], value["password"]), "the current version logs in"
    versions = list(kv.list_properties_of_secret_versions(secret.name))
    by_rotation: dict[str, int] = {}
    for version in versions:
        rotation_id = (version.tags or {}).get("rotator-rotation-id")
        if rotation_id:
            by_rotation[rotation_id] = by_rotation.get(rotation_id, 0) + 1
    assert all(count == 1 for count in by_rotation.values()), f"one version each: {by_rotation}"
    history = records(app, secret.name)
    open_pending = {r["pendingVersion"] for r in history if r["status"] not in CLOSED}
    for version in kv.list_properties_of_secret_versions(pending_name(secret.name)):
        if version.enabled:
            assert version.version in open_pending, "an enabled pending version nobody owns"
    for record in history:
        assert record["status"] in CLOSED, record
        mine = [v for v in versions
                if (v.tags or {}).get("rotator-rotation-id") == record["rotationId"]]
        if record["status"] == "succeeded":
            assert [v.version for v in mine] == [record["newVersion"]], record
            assert record["newVersion"] == current.properties.version
            if kit.strategy == "alternating-users":
                assert not kit.logs_in(secret.role, secret.password), "previous login retired"
        elif record["status"] == "failed":
            assert not mine, f"a failed rotation wrote a version: {record}"
            assert ("nothing had changed" in record["lastError"]
                    or "logs in (verified)" in record["lastError"]), record["lastError"]
            assert current.properties.version == secret.version
            assert kit.logs_in(secret.role, secret.password)


# -- Key Vault faults: every call, every kind, three intensities --------------------------

CALLS: dict[str, Callable[[Secret], dict[str, Any]]] = {
    "read-rotated": lambda s: {"method": "GET", "path_contains": f"/secrets/{s.name}/{s.version}"},
    "read-latest": lambda s: {"method": "GET", "path_equals": f"/secrets/{s.name}"},
    "read-pending": lambda s: {"method": "GET", "path_contains": f"/secrets/{pending_name(s.name)}"},
    "write-pending": lambda s: {"method": "PUT", "path_equals": f"/secrets/{pending_name(s.name)}"},
    "promote": lambda s: {"method": "PUT", "path_equals": f"/secrets/{s.name}"},
    "disable-pending": lambda s: {"method": "PATCH",
                                  "path_contains": f"/secrets/{pending_name(s.name)}/"},
}
KINDS: dict[str, dict[str, Any]] = {
    "throttled": {"status": 429},  # as observed: no Retry-After
    "unavailable": {"status": 503},
    "dropped": {"status": 0},
    "lost-response": {"status": 0, "after_processing": True},
}
INTENSITIES = {"one-request": 1, "in-attempt": RETRY_ATTEMPTS, "sustained": 1000}


@pytest.mark.parametrize("intensity", list(INTENSITIES))
@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("call", list(CALLS))
def test_key_vault_faults_never_break_the_current_credential(
    app: App, twin: KeyVaultTwin, kv: SecretClient, kit: Kit, call: str, kind: str,
    intensity: str,
) -> None:
    secret = kit.make_secret()
    twin.inject_fault(count=INTENSITIES[intensity], **KINDS[kind], **CALLS[call](secret))
    event = near_expiry(twin, secret.name, secret.version)
    deliver(app, event, times=MAX_ATTEMPTS)
    recover(app, twin, event, secret.name)
    assert_world(app, kv, kit, secret)


def test_promote_landing_with_its_response_lost_on_the_last_attempt_rolls_forward(
    app: App, twin: KeyVaultTwin, kv: SecretClient, kit: Kit, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue case 1: no in-attempt retry to adopt the version, and no attempt left."""
    _declare(monkeypatch, kit, ROTATOR_MAX_ATTEMPTS="1", ROTATOR_RETRY_ATTEMPTS="1")
    secret = kit.make_secret()
    twin.inject_fault(status=0, after_processing=True, **CALLS["promote"](secret))
    event = near_expiry(twin, secret.name, secret.version)
    deliver(app, event)
    (record,) = records(app, secret.name)
    assert record["status"] == "cleanup-pending" and record["step"] == "promoted"
    assert "only goes forward" in record["lastError"]
    assert record["newVersion"] == kv.get_secret(secret.name).properties.version
    recover(app, twin, event, secret.name)
    assert records(app, secret.name)[0]["status"] == "succeeded"
    assert_world(app, kv, kit, secret)


def test_a_lost_response_on_a_write_is_adopted_not_written_twice(
    app: App, twin: KeyVaultTwin, kv: SecretClient, kit: Kit,
) -> None:
    secret = kit.make_secret()
    twin.inject_fault(status=0, after_processing=True, **CALLS["write-pending"](secret))
    twin.inject_fault(status=0, after_processing=True, **CALLS["promote"](secret))
    deliver(app, near_expiry(twin, secret.name, secret.version))
    assert len(list(kv.list_properties_of_secret_versions(pending_name(secret.name)))) == 1
    assert len(list(kv.list_properties_of_secret_versions(secret.name))) == 2
    assert records(app, secret.name)[0]["status"] == "succeeded"
    assert_world(app, kv, kit, secret)


def test_the_sweeper_disables_orphan_pending_versions_only(
    app: App, twin: KeyVaultTwin, kv: SecretClient, kit: Kit,
) -> None:
    secret = kit.make_secret()
    event = near_expiry(twin, secret.name, secret.version)
    deliver(app, event)
    (record,) = records(app, secret.name)
    orphan = kv.set_secret(pending_name(secret.name), '{"username": "x", "password": "y-1"}',
                           content_type="application/json",
                           tags={"rotator-rotation-id": record["rotationId"]})
    stranger = kv.set_secret(pending_name(secret.name), '{"username": "x", "password": "y-2"}',
                             tags={"rotator-rotation-id": "not-one-of-ours"})
    app.sweep()
    states = {v.version: v.enabled
              for v in kv.list_properties_of_secret_versions(pending_name(secret.name))}
    assert states[orphan.properties.version] is False  # its rotation is finished
    assert states[stranger.properties.version] is False
    assert not any(states.values())


# -- the protocol's numbers -----------------------------------------------------------------

def test_one_event_and_any_number_of_sweeps_make_one_rotation(
    app: App, twin: KeyVaultTwin, kv: SecretClient, kit: Kit,
) -> None:
    secret = kit.make_secret()
    deliver(app, near_expiry(twin, secret.name, secret.version))
    for _ in range(4):
        app.sweep()
    assert len(records(app, secret.name)) == 1
    assert len(list(kv.list_properties_of_secret_versions(secret.name))) == 2


def test_a_validity_tag_inside_the_sweep_window_is_refused_before_anything_changes(
    app: App, twin: KeyVaultTwin, kv: SecretClient, kit: Kit,
) -> None:
    secret = kit.make_secret()
    tags = {"rotator-target": kit.target, "rotator-validity-days": "7"}
    kv.update_secret_properties(secret.name, secret.version, tags=tags)
    status, body = app.post_rotate(secret.name)
    assert status == 409
    assert "rotator-validity-days=7 days is too short: a new version must live at least 31 days" \
        in body["error"]["message"]
    assert records(app, secret.name) == []


@pytest.mark.parametrize(("env", "message"), [
    ({"ROTATOR_VALIDITY_DAYS": "30"}, "ROTATOR_VALIDITY_DAYS=30 days is too short"),
    ({"ROTATOR_VALIDITY_DAYS": "40", "ROTATOR_SWEEP_WINDOW_DAYS": "45"},
     "must live at least 46 days"),
    ({"ROTATOR_LEASE_SECONDS": "30", "ROTATOR_KEYVAULT_TIMEOUT_SECONDS": "20"},
     "ROTATOR_LEASE_SECONDS=30 is too short: it must be at least 3 x the longest client "
     "timeout (ROTATOR_KEYVAULT_TIMEOUT_SECONDS=20, ROTATOR_CONNECT_TIMEOUT_SECONDS=10) = 60"),
])
def test_settings_that_break_the_protocol_are_refused_with_the_numbers(
    env: dict[str, str], message: str,
) -> None:
    base = {"ROTATOR_VAULTS": "kv1", "ROTATOR_JOURNAL": "memory:", "ROTATOR_TARGETS": json.dumps(
        {"t": {"kind": "postgresql", "address": "postgresql://db/app", "logins": ["a"],
               "secrets": ["a"]}})}
    with pytest.raises(ConfigurationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Settings.from_env({**base, **env})


def test_a_step_slower_than_the_clients_timeout_cannot_write_twice(
    app: App, twin: KeyVaultTwin, kv: SecretClient, kit: Kit, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue case 6: promote's answer comes after the client gave up waiting, but the write
    lands. The read timeout (far below the lease) ends the call; the retry adopts the version;
    no second worker could have taken the lease meanwhile."""
    _declare(monkeypatch, kit, ROTATOR_KEYVAULT_TIMEOUT_SECONDS="1")
    secret = kit.make_secret()
    twin.inject_fault(status=200, delay_seconds=2.5, after_processing=True,
                      **CALLS["promote"](secret))
    deliver(app, near_expiry(twin, secret.name, secret.version))
    (record,) = records(app, secret.name)
    assert record["status"] == "succeeded"
    assert len(list(kv.list_properties_of_secret_versions(secret.name))) == 2
    assert record["newVersion"] == kv.get_secret(secret.name).properties.version
    assert_world(app, kv, kit, secret)


# -- the world changed behind the rotation ----------------------------------------------------

class OnceAfter:
    """A step observer that does something to the world once, right after a step's effect."""

    def __init__(self, step: Step, action: Callable[[], None]) -> None:
        self.step, self.action, self.done = step, action, False

    def before(self, step: Step, record: RotationRecord) -> None:
        return None

    def after_effect(self, step: Step, record: RotationRecord) -> None:
        if step == self.step and not self.done:
            self.done = True
            self.action()

    def after_journal(self, step: Step, record: RotationRecord) -> None:
        return None

    def inside(self, step: Step, point: str, record: RotationRecord) -> None:
        return None


@pytest.fixture
def observe() -> Iterator[Callable[[OnceAfter], None]]:
    def install(observer: OnceAfter) -> None:
        set_step_observer(observer)
        reset_services()

    yield install
    set_step_observer(None)
    reset_services()


@pytest.mark.parametrize("step", ["applied", "verified"])
def test_a_version_written_by_hand_mid_rotation_supersedes_it_untouched(
    app: App, twin: KeyVaultTwin, kv: SecretClient, kit: Kit, step: Step,
    observe: Callable[[OnceAfter], None],
) -> None:
    """Issue case 3: an operator resets the password by hand and stores it as a new version
    while a rotation is under way. The rotation must not restore the old password over it."""
    secret = kit.make_secret()
    by_hand = "Set-By-Hand-Passw0rd"

    def operator_steps_in() -> None:
        kit.set_password_by_hand(secret.role, by_hand)
        kv.set_secret(secret.name, json.dumps({"username": secret.role, "password": by_hand}),
                      content_type="application/json", tags={"rotator-target": kit.target})

    observe(OnceAfter(step, operator_steps_in))
    event = near_expiry(twin, secret.name, secret.version)
    deliver(app, event, times=MAX_ATTEMPTS)
    recover(app, twin, event, secret.name)
    (record,) = records(app, secret.name)
    assert record["status"] == "superseded", record
    assert "written outside this rotation, is current and was left as it is (it logs in: yes)" \
        in record["lastError"]
    assert kit.logs_in(secret.role, by_hand)
    current = json.loads(kv.get_secret(secret.name).value or "{}")
    assert current["password"] == by_hand
    assert not any(v.enabled for v in kv.list_properties_of_secret_versions(
        pending_name(secret.name)))


def test_a_secret_deleted_mid_rotation_is_repaired_once_recovered(
    app: App, twin: KeyVaultTwin, kv: SecretClient, kit: Kit,
    observe: Callable[[OnceAfter], None],
) -> None:
    """Issue case 8: the target already holds the pending password when the secret vanishes."""
    secret = kit.make_secret()
    observe(OnceAfter("verified", lambda: kv.begin_delete_secret(secret.name).wait()))
    event = near_expiry(twin, secret.name, secret.version)
    deliver(app, event, times=MAX_ATTEMPTS)
    app.sweep()
    (record,) = records(app, secret.name)
    assert record["status"] == "needs-repair"
    assert "the secret is gone from Key Vault" in record["lastError"]
    kv.begin_recover_deleted_secret(secret.name).wait()
    recover(app, twin, event, secret.name)
    (settled,) = records(app, secret.name)
    assert settled["status"] == "failed"
    assert f"version {secret.version} logs in (verified)" in settled["lastError"]
    assert_world(app, kv, kit, secret)


def test_cleanup_after_promote_is_retried_never_failed(
    app: App, twin: KeyVaultTwin, kv: SecretClient, kit: Kit,
) -> None:
    """Issue case 7: disabling the pending version fails for a long time."""
    secret = kit.make_secret()
    twin.inject_fault(status=503, count=1000, **CALLS["disable-pending"](secret))
    event = near_expiry(twin, secret.name, secret.version)
    deliver(app, event, times=MAX_ATTEMPTS + 2)
    for _ in range(3):
        app.sweep()
    (record,) = records(app, secret.name)
    assert record["status"] == "cleanup-pending"
    assert record["lastError"].startswith("cleanup outstanding")
    current = json.loads(kv.get_secret(secret.name).value or "{}")
    assert kit.logs_in(current["username"], current["password"])
    recover(app, twin, event, secret.name)
    assert records(app, secret.name)[0]["status"] == "succeeded"
    assert_world(app, kv, kit, secret)


# -- the database down or frozen after each step -----------------------------------------------

class FlakyDatabase(Protocol):
    """A database server of this module's own, which tests stop, start, freeze and thaw.

    ``stop`` shuts it down cleanly and ``start`` brings it back on the same port and data;
    ``freeze`` stops its processes (SIGSTOP): connections are accepted by the kernel and
    never answered; ``thaw`` (SIGCONT) lets them carry on.
    """

    @property
    def server(self) -> object: ...  # what the kit is made on

    @property
    def running(self) -> bool: ...  # started (frozen or not)

    def stop(self) -> None: ...

    def start(self) -> None: ...

    def freeze(self) -> None: ...

    def thaw(self) -> None: ...


@dataclass
class FlakyPostgres:
    """The PostgreSQL of this module, through ``pg_ctl`` and signals to every process."""

    server: PostgresServer
    pg_bin: Path

    @property
    def running(self) -> bool:
        return (self.server.socket_dir / "data" / "postmaster.pid").exists()

    def stop(self) -> None:
        self._ctl("stop", "-m", "fast")

    def start(self) -> None:
        self._ctl("start")

    def freeze(self) -> None:
        self._signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self._signal(signal.SIGCONT)

    def _signal(self, which: signal.Signals) -> None:
        for pid in self._pids():
            try:
                os.kill(pid, which)
            except ProcessLookupError:
                pass  # a backend that ended between listing and signalling

    def _pids(self) -> list[int]:
        pid_file = self.server.socket_dir / "data" / "postmaster.pid"
        if not pid_file.exists():
            return []  # stopped
        main = int(pid_file.read_text().splitlines()[0])
        children = subprocess.run(["pgrep", "-P", str(main)], capture_output=True, text=True,
                                  check=False).stdout.split()
        return [main, *map(int, children)]

    def _ctl(self, *args: str) -> None:
        data = self.server.socket_dir / "data"
        command = [str(self.pg_bin / "pg_ctl"), "-D", str(data), "-w", *args]
        if args[0] == "start":
            command += ["-l", str(self.server.socket_dir / "log"), "-o", _options(self.server)]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True)


def _options(server: PostgresServer) -> str:
    base = server.socket_dir
    return (f"-p {server.port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off "
            f"-c ssl=on -c ssl_cert_file={base / 'server.crt'} -c ssl_key_file={base / 'server.key'}")


@pytest.fixture(scope="module")
def flaky_postgres() -> Iterator[FlakyPostgres]:
    pg_bin = find_pg_bin()
    assert pg_bin is not None, "PostgreSQL server binaries are needed (scripts/install-system-deps.sh)"
    with running_postgres(pg_bin) as server:
        yield FlakyPostgres(server, pg_bin)


@pytest.fixture(scope="module")
def flaky_mariadb() -> Iterator[MariaDBProcess]:
    binaries = find_mariadb_bin()
    assert binaries is not None, "MariaDB server binaries are needed (scripts/install-system-deps.sh)"
    with mariadb_process(binaries) as process:
        yield process


#: The module's own database for each kit's session server (KitSpec.server). A kind without
#: one here does not run the outage cases (docs/writing-a-target.md).
FLAKY_DATABASES = {"postgres": "flaky_postgres", "mariadb": "flaky_mariadb"}


@dataclass
class Flaky:
    """A kit declared on a database of this module's own, and that database's controls."""

    kit: Kit
    database: FlakyDatabase


@pytest.fixture
def flaky(request: pytest.FixtureRequest, app: App, kv: SecretClient,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[Flaky]:
    """The kit named by the test's indirect ``flaky`` parameter, on its own flaky database;
    at teardown the database is thawed and running again, whatever the test did to it."""
    name: str = request.param
    database: FlakyDatabase = request.getfixturevalue(FLAKY_DATABASES[KITS[name].server])
    made = make_kit(name, kv, database.server)
    _declare(monkeypatch, made, ROTATOR_CONNECT_TIMEOUT_SECONDS="2")
    yield Flaky(made, database)
    database.thaw()
    if not database.running:
        database.start()


OUTAGE_STEPS: list[Step] = ["prepared", "applied", "verified", "promoted", "propagated",
                            "retired", "finished"]
#: The steps after which each kind's database fails. PostgreSQL, the reference: every step.
#: The others: the last step before each call the rotation makes to the database (prepared:
#: apply; applied: verify; propagated: retire, for alternating users). After any other step
#: the outage meets the target at the same call as after one of those, with only Key Vault
#: steps between, which are the engine's business and the same for every kind; and each
#: frozen case waits out the connect timeout on every try (up to 22 s a case).
OUTAGE_STEPS_BY_SERVER: dict[str, list[Step]] = {"postgres": OUTAGE_STEPS,
                                                 "mariadb": ["prepared", "applied", "propagated"]}
FLAKY_KITS = [name for name in KITS if KITS[name].server in FLAKY_DATABASES]
OUTAGE_CASES = [
    pytest.param(name, step, length, outage, id=f"{name}-{step}-{length}-{outage}")
    for name in FLAKY_KITS
    for step in OUTAGE_STEPS_BY_SERVER[KITS[name].server]
    for length in ("shorter", "longer")
    for outage in ("down", "frozen")
]


@pytest.mark.parametrize(("flaky", "step", "length", "outage"), OUTAGE_CASES, indirect=["flaky"])
def test_the_database_down_or_frozen_after_a_step(
    app: App, twin: KeyVaultTwin, kv: SecretClient, flaky: Flaky,
    observe: Callable[[OnceAfter], None], step: Step, outage: str, length: str,
) -> None:
    """Issue case 2: the outage starts right after ``step``'s effect and lasts one attempt
    (shorter) or past the last attempt (longer); afterwards the current version logs in."""
    database = flaky.database
    secret = flaky.kit.make_secret()
    observe(OnceAfter(step, database.stop if outage == "down" else database.freeze))
    event = near_expiry(twin, secret.name, secret.version)
    deliver(app, event, times=1 if length == "shorter" else MAX_ATTEMPTS)
    open_records = [r for r in records(app, secret.name) if r["status"] not in CLOSED]
    if length == "longer" and step in ("prepared", "applied"):
        # Nothing can prove the current version logs in, nor put it back: kept open.
        assert open_records and open_records[0]["status"] == "needs-repair", open_records
    if outage == "down":
        database.start()
    else:
        database.thaw()
    recover(app, twin, event, secret.name)
    assert_world(app, kv, flaky.kit, secret)


# -- credential health ------------------------------------------------------------------------

def test_the_health_check_finds_drift_and_changes_nothing(
    app: App, twin: KeyVaultTwin, kv: SecretClient, kit: Kit, captured: CapturingHandler,
) -> None:
    """A password changed out of band (or lost by a replica failover) is found before any
    consumer fails: logged as credential drift and counted, read-only."""
    from azure.functions.timer import TimerRequest

    import function_app

    healthy, drifted = kit.make_secret(), kit.make_secret()
    kit.set_password_by_hand(drifted.role, "Changed-0ut-Of-Band")
    before = metric_points("rotator.credential.drift")
    function_app.credential_health(TimerRequest(past_due=False))
    lines = [r for r in captured.records() if str(r.get("event", "")).startswith("credential drift")]
    assert [r["secret"] for r in lines] == [drifted.name]
    assert lines[0]["version"] == drifted.version and lines[0]["target"] == kit.target
    key = (("rotator.target", kit.target), ("rotator.vault", twin.vault_name))
    assert metric_points("rotator.credential.drift").get(key, 0) == before.get(key, 0) + 1
    summary = next(r for r in captured.records() if r.get("event") == "credential health checked")
    assert summary["drifted"] == 1 and isinstance(summary["healthy"], int) and summary["healthy"] >= 1
    assert kit.logs_in(healthy.role, healthy.password)  # nothing was changed
    for secret in (healthy, drifted):
        assert len(list(kv.list_properties_of_secret_versions(secret.name))) == 1
        assert records(app, secret.name) == []


@pytest.mark.parametrize("flaky", FLAKY_KITS, indirect=True)
def test_repeated_repairs_keep_one_truthful_last_error(
    app: App, twin: KeyVaultTwin, kv: SecretClient, flaky: Flaky,
    observe: Callable[[OnceAfter], None],
) -> None:
    secret = flaky.kit.make_secret()
    observe(OnceAfter("applied", flaky.database.stop))
    event = near_expiry(twin, secret.name, secret.version)
    deliver(app, event, times=MAX_ATTEMPTS)
    for _ in range(3):
        app.sweep()
    (record,) = records(app, secret.name)
    assert record["status"] == "needs-repair"
    assert record["lastError"].count("could not prove") == 1, record["lastError"]
    assert record["lastError"].startswith("gave up after 3 attempts")
    flaky.database.start()
    recover(app, twin, event, secret.name)
    assert_world(app, kv, flaky.kit, secret)


def test_a_broken_hand_written_version_supersedes_but_the_working_pending_is_kept(
    app: App, twin: KeyVaultTwin, kv: SecretClient, kit: Kit,
    observe: Callable[[OnceAfter], None],
) -> None:
    """Someone stores a version that does not log in while the target already holds the
    pending credential: the rotation leaves their version alone, and keeps the one
    credential known to work, saying so."""
    secret = kit.make_secret()

    def careless_write() -> None:
        kv.set_secret(secret.name, json.dumps({"username": secret.role, "password": "Typo-1"}),
                      content_type="application/json", tags={"rotator-target": kit.target})

    observe(OnceAfter("verified", careless_write))
    deliver(app, near_expiry(twin, secret.name, secret.version), times=MAX_ATTEMPTS)
    (record,) = records(app, secret.name)
    assert record["status"] == "superseded"
    assert "(it logs in: no)" in record["lastError"]
    assert f"the pending version {record['pendingVersion']} logs in and was kept" \
        in record["lastError"]
    pending = kv.get_secret(pending_name(secret.name), record["pendingVersion"])
    value = json.loads(pending.value or "{}")
    assert kit.logs_in(value["username"], value["password"])
