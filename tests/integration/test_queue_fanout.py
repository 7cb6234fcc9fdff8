"""The sweeper fans its work out on a Storage queue (Azurite's Queue service), and the queue
function does it: each due secret is queued exactly once across concurrent sweeps, every one
is rotated by ``queued_work``, and work the host gives up on is recorded as a failed rotation.

The Functions host itself cannot run here: the tests read the queue with the Storage SDK and
hand each message to the function as the host would (its body base64-decoded, a dequeue
count), and play the host's poison step (after ``maxDequeueCount`` deliveries the host moves
the message to ``<queue>-poison``, whose trigger is ``poisoned_work``).
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import azure.functions as func
import pytest
from azure.functions.queue import QueueMessage as WorkerQueueMessage
from azure.keyvault.secrets import SecretClient
from azure.storage.queue import QueueClient

from handlers.queue import max_dequeue_count
from handlers.services import build_services, reset_services
from rotation.settings import Settings
from tests.integration.conftest import App, SecretFactory
from tests.integration.test_protocol import admin_secret
from tests.support.azurite import running_azurite_queue
from tests.support.postgres import PostgresServer
from tests.support.targets import pg_target
from twins.keyvault import KeyVaultTwin


@pytest.fixture(scope="module")
def queue_storage() -> Iterator[str]:
    with running_azurite_queue() as connection:
        yield connection


@pytest.fixture
def work_queue(app: App, queue_storage: str, monkeypatch: pytest.MonkeyPatch) -> QueueClient:
    """A fresh queue for this test, named in the app's settings, the app pointed at it."""
    name = f"work-{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("AzureWebJobsStorage", queue_storage)
    monkeypatch.setenv("ROTATOR_QUEUE", name)
    reset_services()
    client = QueueClient.from_connection_string(queue_storage, name)
    client.create_queue()
    return client


def drained(client: QueueClient) -> list[dict[str, Any]]:
    """Every message on the queue, taken off it: its id and decoded JSON body."""
    taken: list[dict[str, Any]] = []
    while True:
        batch = list(client.receive_messages(messages_per_page=32, visibility_timeout=300))
        if not batch:
            return taken
        for message in batch:
            body = json.loads(base64.b64decode(message.content))  # the host's default encoding
            taken.append({"id": message.id, "body": body})
            client.delete_message(message)


def delivered(message: dict[str, Any], dequeue_count: int = 1) -> func.QueueMessage:
    """The message as the Python worker hands it to a queue function (its own class, the
    body base64-decoded by the host)."""
    return WorkerQueueMessage(id=message["id"], body=json.dumps(message["body"]).encode(),
                              dequeue_count=dequeue_count)


def sweep_concurrently(count: int) -> None:
    """``count`` sweeps at once, each with services of its own (as separate instances)."""
    sweepers = [build_services(Settings.from_env(os.environ)).sweeper for _ in range(count)]
    start = threading.Barrier(count)
    errors: list[BaseException] = []

    def run(sweeper: Any) -> None:
        try:
            start.wait()
            sweeper.sweep()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(s,)) for s in sweepers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not errors, errors


def test_two_concurrent_sweeps_queue_each_due_secret_once_and_the_queue_function_rotates_all(
        app: App, work_queue: QueueClient, db_secret: SecretFactory, kv: SecretClient) -> None:
    due = [db_secret(expires_in_days=20) for _ in range(240)]
    never = db_secret(expires_in_days=20)
    kv.update_secret_properties(never.name, never.version, tags={"owner": "platform-team"})
    later = [db_secret(expires_in_days=80) for _ in range(10)]

    sweep_concurrently(2)

    messages = drained(work_queue)
    queued = Counter((m["body"]["kind"], m["body"]["secret"]) for m in messages)
    assert queued == Counter(("rotate", db.name) for db in due), "each due secret exactly once"
    assert never.name not in {s for _, s in queued} and not {d.name for d in later} & {s for _, s in queued}

    import function_app

    for message in messages:
        function_app.queued_work(delivered(message))
    for db in due:
        status, history = app.get(f"secrets/{db.name}/rotations", {"name": db.name})
        assert status == 200 and [r["status"] for r in history["rotations"]] == ["succeeded"], db.name
        assert history["rotations"][0]["trigger"]["source"] == "sweeper"
        assert kv.get_secret(db.name).properties.version != db.version

    sweep_concurrently(2)  # the new versions expire in 45 days: nothing is due any more
    assert drained(work_queue) == []


def test_a_second_sweep_does_not_queue_work_already_queued(
        app: App, work_queue: QueueClient, db_secret: SecretFactory) -> None:
    db = db_secret(expires_in_days=3)
    app.sweep()
    app.sweep()
    assert [m["body"]["secret"] for m in drained(work_queue)] == [db.name]


def test_work_the_queue_gives_up_on_shows_as_a_failed_rotation_with_its_reason(
        app: App, work_queue: QueueClient, db_secret: SecretFactory, twin: KeyVaultTwin) -> None:
    db = db_secret(expires_in_days=3)
    app.sweep()
    [message] = drained(work_queue)
    import function_app

    twin.inject_fault(status=503, count=1000, method="GET", path_contains=db.name)
    deliveries = max_dequeue_count()
    for attempt in range(1, deliveries + 1):
        with pytest.raises(Exception, match="503"):
            function_app.queued_work(delivered(message, dequeue_count=attempt))
    twin.clear_faults()
    function_app.poisoned_work(delivered(message))  # the host moved it to <queue>-poison

    status, history = app.get(f"secrets/{db.name}/rotations", {"name": db.name})
    assert status == 200
    [failed] = history["rotations"]
    assert failed["status"] == "failed"
    assert failed["lastError"].startswith(f"the work queue gave up after {deliveries} deliveries: "
                                          "TransientError")
    assert "503" in failed["lastError"]
    _, listing = app.get("secrets", {})
    assert {r["secret"]: r["state"] for r in listing["secrets"]}[db.name] == "failed"
    app.sweep()
    assert drained(work_queue) == [], "a failed rotation waits for a person, as after an event"


def test_work_poisoned_by_throttling_alone_is_no_failed_rotation(
        app: App, work_queue: QueueClient, db_secret: SecretFactory, twin: KeyVaultTwin) -> None:
    """Throttling is the vault's load: when Key Vault answered 429 to every delivery, the
    poison handler records nothing; the sweeper queues the work again later."""
    db = db_secret(expires_in_days=3)
    app.sweep()
    [message] = drained(work_queue)
    import function_app

    twin.inject_fault(status=429, count=1000, path_contains=db.name)
    deliveries = max_dequeue_count()
    for attempt in range(1, deliveries + 1):
        with pytest.raises(Exception, match="429"):
            function_app.queued_work(delivered(message, dequeue_count=attempt))
    twin.clear_faults()
    function_app.poisoned_work(delivered(message))

    status, history = app.get(f"secrets/{db.name}/rotations", {"name": db.name})
    assert status == 200
    assert [r["status"] for r in history["rotations"]] in ([], ["running"]), history
    _, listing = app.get("secrets", {})
    assert {r["secret"]: r["state"] for r in listing["secrets"]}[db.name] != "failed"
    assert any("poisoned by throttling alone" in line for line in app.said.log_lines)


def test_a_due_retirement_is_queued_and_the_queue_function_finishes_it(
        app: App, work_queue: QueueClient, db_secret: SecretFactory, kv: SecretClient,
        postgres: PostgresServer, declare_targets: Callable[..., None],
        monkeypatch: pytest.MonkeyPatch, queue_storage: str) -> None:
    admin_secret(postgres, kv, "pg-admin-queue")
    declare_targets(pg_queue=pg_target(postgres, admin="pg-admin-queue", strategies=["alternating-users"]))
    monkeypatch.setenv("AzureWebJobsStorage", queue_storage)  # declare_targets reset the services
    db = db_secret(tags={"rotator-target": "pg-queue", "rotator-grace-hours": "0.0003"})  # ~1 s
    status, rotated = app.post_rotate(db.name)
    assert (status, rotated["status"]) == (200, "awaiting-retirement")
    time.sleep(1.5)
    app.sweep()
    [message] = drained(work_queue)
    assert message["body"]["kind"] == "resume" and message["body"]["rotationId"] == rotated["rotationId"]
    import function_app

    function_app.queued_work(delivered(message))
    status, after = app.get(f"rotations/{rotated['rotationId']}", {"id": rotated["rotationId"]})
    assert after["status"] == "succeeded"
    assert not postgres.can_login(db.role, db.password), "the previous login was retired"


def test_a_malformed_message_is_dropped_with_a_log_line(app: App, work_queue: QueueClient) -> None:
    import function_app

    for body in (b"not json", b'{"kind": "rotate"}', b'{"kind": "drop", "vault": "kv-test"}',
                 json.dumps({"kind": "rotate", "vault": "kv-test", "secret": "x" * 200,
                             "stamp": "1"}).encode()):
        function_app.queued_work(WorkerQueueMessage(id="m", body=body, dequeue_count=1))
    assert sum("work message rejected" in line for line in app.said.log_lines) == 4


def test_without_a_storage_account_the_sweeper_works_inline(
        app: App, db_secret: SecretFactory, kv: SecretClient) -> None:
    db = db_secret(expires_in_days=3)
    app.sweep()
    assert kv.get_secret(db.name).properties.version != db.version


def test_the_queue_setting_is_checked(app_settings: dict[str, str]) -> None:
    from rotation.errors import ConfigurationError

    env = {**os.environ, "AzureWebJobsStorage": "UseDevelopmentStorage=true", "ROTATOR_QUEUE": "Bad_Name"}
    with pytest.raises(ConfigurationError, match="ROTATOR_QUEUE must be a queue name"):
        Settings.from_env(env)
    assert Settings.from_env({**env, "ROTATOR_QUEUE": "rotations"}).queue is not None
    local = {k: v for k, v in env.items() if k not in ("AzureWebJobsStorage", "ROTATOR_QUEUE")}
    assert Settings.from_env(local).queue is None
    account = ("DefaultEndpointsProtocol=https;AccountName=stprod;AccountKey=a2V5;"
               "EndpointSuffix=core.windows.net")
    table_only = ("DefaultEndpointsProtocol=http;AccountName=dev;AccountKey=a2V5;"
                  "TableEndpoint=http://127.0.0.1:1/dev;")
    for connection, fans_out in ((account, True), (table_only, False),
                                 (table_only + "QueueEndpoint=http://127.0.0.1:2/dev;", True)):
        queue = Settings.from_env({**local, "AzureWebJobsStorage": connection}).queue
        assert (queue is not None) is fans_out, connection
    by_identity = Settings.from_env({**local, "AzureWebJobsStorage__accountName": "stprod"}).queue
    assert by_identity is not None and by_identity.endpoint == "https://stprod.queue.core.windows.net"
    assert "a2V5" not in repr(Settings.from_env({**local, "AzureWebJobsStorage": account}))


def test_sends_that_fail_are_reported_per_secret_and_their_marks_keep_them_from_a_resend(
        app: App, db_secret: SecretFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    due = sorted(db_secret(expires_in_days=3).name for _ in range(3))
    # A queue service nobody answers on: every send fails, after its mark was written.
    unreachable = ("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;"
                   "QueueEndpoint=http://127.0.0.1:1/devstoreaccount1;")
    monkeypatch.setenv("AzureWebJobsStorage", unreachable)
    monkeypatch.setenv("ROTATOR_QUEUE", "work-unreachable")
    report = build_services(Settings.from_env(os.environ)).sweeper.sweep()
    assert (sorted(report.failed), report.queued) == (due, [])
    lines = [line for line in app.said.log_lines if "sweep could not queue work" in line]
    assert sorted(next(s for s in due if s in line) for line in lines) == due
    again = build_services(Settings.from_env(os.environ)).sweeper.sweep()
    assert sorted(again.skipped) == [f"{name}:rotate" for name in due], \
        "marked before the send: queued again only once the mark is an hour old"
