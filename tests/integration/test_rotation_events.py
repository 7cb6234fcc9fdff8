"""Rotation events out: CloudEvents through azure-eventgrid's publisher to the Event Grid twin.

The twin checks what the SDK sends as Event Grid does (authentication, the CloudEvents batch
content type, required attributes); the tests check what the rotator says: one event per kind
and rotation, ids stable across attempts, no value anywhere, and a rotation that never waits
on a topic that is down.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from azure.keyvault.secrets import SecretClient

from handlers.services import reset_services
from tests.integration.conftest import App, SecretFactory, near_expiry
from tests.integration.test_protocol import admin_secret
from tests.support.leaks import secret_material
from tests.support.postgres import PostgresServer
from tests.support.targets import pg_target
from twins.eventgrid import EventGridTwin, Published
from twins.keyvault import KeyVaultTwin


def kinds(published: list[Published]) -> list[str]:
    return [p.event["type"].removeprefix("akv-rotator.rotation.") for p in published]


def assert_no_values(published: list[Published], kv: SecretClient) -> None:
    text = json.dumps([p.event for p in published])
    leaked = [value for value in secret_material(kv) if value in text]
    assert not leaked, "a secret value was published"


def test_a_rotation_publishes_one_succeeded_event(app: App, topic: EventGridTwin, twin: KeyVaultTwin,
                                                  kv: SecretClient, db_secret: SecretFactory) -> None:
    secret = db_secret()
    app.deliver(near_expiry(twin, secret.name, secret.version))
    [event] = topic.published()
    assert (event.content_type, event.authorization, event.topic) == (
        "application/cloudevents-batch+json", "bearer", None)
    body = event.event
    _, rotations = app.get(f"secrets/{secret.name}/rotations", {"name": secret.name})
    [rotation] = rotations["rotations"]
    assert body["type"] == "akv-rotator.rotation.succeeded" and body["specversion"] == "1.0"
    assert body["source"] == f"akv-rotator/{twin.vault_name}" and body["subject"] == secret.name
    assert body["id"] == f"{rotation['rotationId']}.succeeded"
    data = body["data"]
    assert (data["status"], data["oldVersion"], data["newVersion"]) == (
        "succeeded", secret.version, rotation["newVersion"])
    assert data["trigger"]["source"] == "event" and [s["step"] for s in data["steps"]][-1] == "finished"
    assert rotation["eventsPublished"] == ["succeeded"]
    assert_no_values(topic.published(), kv)

    app.deliver(near_expiry(twin, secret.name, secret.version))  # a redelivery: nothing new
    assert len(topic.published()) == 1


def test_retirement_is_announced_before_success(
        app: App, topic: EventGridTwin, twin: KeyVaultTwin, kv: SecretClient, postgres: PostgresServer,
        db_secret: SecretFactory, declare_targets: Callable[..., None]) -> None:
    admin_secret(postgres, kv, "pg-admin-ev")
    declare_targets(pg_ev=pg_target(postgres, admin="pg-admin-ev", strategies=["alternating-users"]))
    secret = db_secret(tags={"rotator-target": "pg-ev", "rotator-grace-hours": "0.0003"})
    app.deliver(near_expiry(twin, secret.name, secret.version))
    assert topic.published() == [], "nothing is announced while the previous login waits"
    time.sleep(1.3)
    app.sweep()
    assert kinds(topic.published()) == ["retired", "succeeded"]
    assert len({p.event["id"] for p in topic.published()}) == 2


def test_a_failed_rotation_is_announced(app: App, topic: EventGridTwin, twin: KeyVaultTwin,
                                        kv: SecretClient, db_secret: SecretFactory,
                                        postgres: PostgresServer) -> None:
    secret = db_secret()
    postgres.create_role(secret.role, "Changed-Behind-Its-Back-1")  # the stored one no longer works
    app.deliver(near_expiry(twin, secret.name, secret.version))
    [event] = topic.published()
    assert event.event["type"] == "akv-rotator.rotation.failed"
    assert event.event["data"]["status"] == "failed"
    assert "does not log in" in event.event["data"]["lastError"]
    assert_no_values(topic.published(), kv)


def test_a_topic_that_is_down_never_holds_or_fails_a_rotation(
        app: App, topic: EventGridTwin, twin: KeyVaultTwin, db_secret: SecretFactory,
        captured: Any) -> None:
    secret = db_secret()
    topic.fail_next(503, count=100)
    app.deliver(near_expiry(twin, secret.name, secret.version))
    _, rotations = app.get(f"secrets/{secret.name}/rotations", {"name": secret.name})
    [rotation] = rotations["rotations"]
    assert (rotation["status"], rotation["eventsPublished"]) == ("succeeded", [])
    assert topic.published() == [] and 1 < topic.requests <= 3  # ROTATOR_RETRY_ATTEMPTS
    assert any('"outcome": "event-not-published"' in line for line in captured.lines)


def test_a_throttled_publish_is_retried_once_and_sent_once(
        app: App, topic: EventGridTwin, twin: KeyVaultTwin, db_secret: SecretFactory) -> None:
    secret = db_secret()
    topic.fail_next(429, count=1, retry_after=0)
    app.deliver(near_expiry(twin, secret.name, secret.version))
    assert kinds(topic.published()) == ["succeeded"] and topic.requests == 2


def test_a_namespace_topic(app: App, topic: EventGridTwin, twin: KeyVaultTwin, db_secret: SecretFactory,
                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROTATOR_EVENTS_ENDPOINT", topic.url)
    monkeypatch.setenv("ROTATOR_EVENTS_TOPIC", "rotations")
    reset_services()
    secret = db_secret()
    app.deliver(near_expiry(twin, secret.name, secret.version))
    [event] = topic.published()
    assert (event.topic, event.event["type"]) == ("rotations", "akv-rotator.rotation.succeeded")
