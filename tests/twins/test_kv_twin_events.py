"""Event Grid events: built on set and on demand, delivered to subscribers and a webhook."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from azure.core.exceptions import HttpResponseError, ResourceExistsError
from azure.core.rest import HttpResponse
from azure.keyvault.secrets import SecretClient

from twins.keyvault import NEAR_EXPIRY, NEW_VERSION_CREATED, KeyVaultTwin

EVENT_KEYS = ["id", "topic", "subject", "eventType", "eventTime", "data", "dataVersion", "metadataVersion"]


def test_set_emits_new_version_created_with_the_version_and_exp(
    twin: KeyVaultTwin, client: SecretClient
) -> None:
    expires = datetime.now(UTC).replace(microsecond=0) + timedelta(days=45)
    created = client.set_secret("db-password", "v1", expires_on=expires)

    [event] = twin.events
    assert list(event) == EVENT_KEYS
    assert event["eventType"] == NEW_VERSION_CREATED
    assert event["subject"] == "db-password"
    assert event["topic"] == (
        "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-twin"
        "/providers/Microsoft.KeyVault/vaults/kv-test"
    )
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z", event["eventTime"])
    assert event["data"] == {
        "Id": f"{twin.url}/secrets/db-password/{created.properties.version}",
        "VaultName": "kv-test",
        "ObjectType": "Secret",
        "ObjectName": "db-password",
        "Version": created.properties.version,
        "NBF": None,
        "EXP": int(expires.timestamp()),
    }
    assert (event["dataVersion"], event["metadataVersion"]) == ("1", "1")


def test_only_successful_sets_emit(twin: KeyVaultTwin, client: SecretClient) -> None:
    client.set_secret("a", "v")
    client.update_secret_properties("a", tags={"x": "y"})
    client.begin_delete_secret("a", _polling_interval=0.05).wait()
    with pytest.raises(ResourceExistsError):
        client.set_secret("a", "again")

    assert [e["eventType"] for e in twin.events] == [NEW_VERSION_CREATED]


def test_emit_near_expiry_describes_the_current_version(twin: KeyVaultTwin, client: SecretClient) -> None:
    client.set_secret("api-key", "v1")
    latest = client.set_secret("api-key", "v2", expires_on=datetime(2030, 1, 1, tzinfo=UTC))

    event = twin.emit("API-KEY", NEAR_EXPIRY)

    assert event["eventType"] == NEAR_EXPIRY
    assert event["subject"] == "api-key"
    assert event["data"]["Version"] == latest.properties.version
    assert event["data"]["EXP"] == 1893456000
    assert twin.events[-1] == event


def test_subscribers_run_on_the_delivery_thread_and_may_call_the_twin(
    twin: KeyVaultTwin, client: SecretClient
) -> None:
    seen: list[tuple[str, str | None]] = []
    reader = twin.secret_client()

    def on_event(event: dict[str, Any]) -> None:
        value = reader.get_secret(event["subject"]).value  # re-enters the twin
        seen.append((threading.current_thread().name, value))

    twin.subscribe(on_event)
    client.set_secret("watched", "v1")

    assert twin.wait_for_deliveries(timeout=5)
    assert seen == [("kv-twin-event-delivery", "v1")]


def test_a_failing_subscriber_does_not_break_the_vault(twin: KeyVaultTwin, client: SecretClient) -> None:
    def broken(event: dict[str, Any]) -> None:
        raise RuntimeError("subscriber bug")

    twin.subscribe(broken)
    client.set_secret("still-works", "v")

    assert twin.wait_for_deliveries()
    assert client.get_secret("still-works").value == "v"


def test_events_are_posted_to_event_url_like_event_grid(event_sink: Any) -> None:
    with KeyVaultTwin(vault_name="kv-hook", event_url=event_sink.url) as twin:
        created = twin.secret_client().set_secret("hooked", "v")
        assert twin.wait_for_deliveries()

    [(headers, body)] = event_sink.deliveries
    assert headers["Content-Type"] == "application/json; charset=utf-8"
    assert headers["aeg-event-type"] == "Notification"
    assert headers["aeg-subscription-name"] == "KV-TWIN"
    assert headers["aeg-delivery-count"] == "0"
    assert headers["aeg-data-version"] == "1"
    assert headers["aeg-metadata-version"] == "1"
    assert isinstance(body, list)
    assert len(body) == 1
    assert body[0]["data"]["Version"] == created.properties.version


def test_failed_deliveries_are_retried(event_sink: Any) -> None:
    event_sink.statuses = [500, 503]
    with KeyVaultTwin(event_url=event_sink.url, delivery_backoff=0.01) as twin:
        twin.secret_client().set_secret("retried", "v")
        assert twin.wait_for_deliveries()

    assert [h["aeg-delivery-count"] for h, _ in event_sink.deliveries] == ["0", "1", "2"]
    assert len({body[0]["id"] for _, body in event_sink.deliveries}) == 1


def test_rejections_event_grid_does_not_retry_are_dropped_at_once(event_sink: Any) -> None:
    event_sink.statuses = [400]
    with KeyVaultTwin(event_url=event_sink.url, delivery_backoff=0.01) as twin:
        twin.secret_client().set_secret("refused", "v")
        assert twin.wait_for_deliveries()

    assert len(event_sink.deliveries) == 1


def test_an_unreachable_endpoint_is_dropped_without_hurting_requests(free_port: int) -> None:
    url = f"http://127.0.0.1:{free_port}/nobody-listens"
    with KeyVaultTwin(event_url=url, delivery_attempts=2, delivery_backoff=0.01) as twin:
        client = twin.secret_client()
        client.set_secret("lonely", "v")
        assert twin.wait_for_deliveries()
        assert client.get_secret("lonely").value == "v"
    assert len(twin.events) == 1


def test_admin_endpoints(twin: KeyVaultTwin, client: SecretClient, raw: Callable[..., Any]) -> None:
    assert raw("GET", "/_twin/health", token=None).body == {
        "status": "ok",
        "vaultName": "kv-test",
        "url": twin.url,
    }
    client.set_secret("admin-made", "v")

    armed = raw("POST", "/_twin/faults", body={"status": 503, "count": 2, "method": "GET"}, token=None)
    assert armed.status == 200
    assert raw("GET", "/_twin/faults", token=None).body[0]["count"] == 2
    assert raw("DELETE", "/_twin/faults", token=None).body == {"cleared": 1}
    assert raw("POST", "/_twin/faults", body={"status": 200}, token=None).status == 400

    emitted = raw(
        "POST", "/_twin/events", body={"secret": "admin-made", "eventType": NEAR_EXPIRY}, token=None
    )
    assert emitted.status == 200
    assert emitted.body["eventType"] == NEAR_EXPIRY
    assert twin.events[-1] == emitted.body
    missing = raw("POST", "/_twin/events", body={"secret": "nope", "eventType": NEAR_EXPIRY}, token=None)
    assert missing.status == 404
    wrong = raw("POST", "/_twin/events", body={"secret": "admin-made", "eventType": "Nope"}, token=None)
    assert wrong.status == 400
    assert len(raw("GET", "/_twin/events", token=None).body) == 2
    recorded = raw("GET", "/_twin/requests", token=None).body
    assert all(not r["path"].startswith("/_twin/") for r in recorded)


def test_admin_fault_is_seen_by_the_sdk(twin: KeyVaultTwin, raw: Callable[..., Any]) -> None:
    client = twin.secret_client(retry_total=0)
    client.set_secret("x", "v")
    assert raw("POST", "/_twin/faults", body={"status": 429, "retryAfter": 1}, token=None).status == 400
    raw("POST", "/_twin/faults", body={"status": 429, "retry_after": 3}, token=None)

    with pytest.raises(HttpResponseError) as raised:
        client.get_secret("x")

    assert raised.value.status_code == 429
    assert _headers(raised.value)["Retry-After"] == "3"


def _headers(error: HttpResponseError) -> Mapping[str, str]:
    """Response headers of an SDK error (typed loosely by azure-core)."""
    response = cast(HttpResponse, error.response)
    return response.headers
