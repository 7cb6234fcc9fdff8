"""Key Vault events in both schemas through the worker's real converter and the registered
function: Event Grid schema and CloudEvents 1.0 rotate alike, and nothing a sender can put in
a body makes the function raise.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from azure.keyvault.secrets import SecretClient

from tests.integration.conftest import App, SecretFactory, versions_of
from tests.support.leaks import CapturingHandler
from tests.support.payloads import decode_event, load_payload, payload_names, retarget
from twins.keyvault import KeyVaultTwin

OUTCOME_LINES = ("event handled", "event ignored", "event rejected")


def outcome_lines(captured: CapturingHandler) -> list[dict[str, Any]]:
    """The one line per event that says what became of it."""
    lines = [json.loads(line) for line in captured.lines if line.startswith("{")]
    return [line for line in lines if line.get("event") in OUTCOME_LINES]


@pytest.mark.parametrize("name", payload_names())
def test_every_golden_payload_is_handled_without_raising(app: App, name: str,
                                                         captured: CapturingHandler) -> None:
    """The published samples name a vault outside the allowlist: refused or ignored, with
    one line saying so, whichever schema carries them."""
    app.deliver(load_payload(name))
    [line] = outcome_lines(captured)
    assert line["outcome"] in ("refused", "ignored", "rejected"), line
    assert line.get("reason") or line.get("detail"), line


@pytest.mark.parametrize("shape", ["cloudevents_near_expiry", "cloudevents_expired"])
def test_a_cloudevents_delivery_rotates(app: App, twin: KeyVaultTwin, kv: SecretClient,
                                        db_secret: SecretFactory, shape: str) -> None:
    secret = db_secret()
    payload = retarget(load_payload(shape), vault=twin.vault_name, secret=secret.name,
                       version=secret.version)
    assert type(decode_event(payload)).__name__ == "CloudEvent"
    app.deliver(payload)
    assert len(versions_of(kv, secret.name)) == 2
    status, body = app.get(f"secrets/{secret.name}/rotations", {"name": secret.name})
    [rotation] = body["rotations"]
    assert (status, rotation["status"], rotation["trigger"]["source"]) == (200, "succeeded", "event")
    assert rotation["trigger"]["reference"] == payload["id"]
    assert rotation["trigger"]["eventType"] == "SecretNearExpiry" if "near" in shape else "SecretExpired"


def test_the_same_event_in_both_schemas_is_one_rotation(app: App, twin: KeyVaultTwin,
                                                        kv: SecretClient, db_secret: SecretFactory,
                                                        captured: CapturingHandler) -> None:
    secret = db_secret()
    for shape in ("near_expiry_pascal", "cloudevents_near_expiry"):
        app.deliver(retarget(load_payload(shape), vault=twin.vault_name, secret=secret.name,
                             version=secret.version))
    assert len(versions_of(kv, secret.name)) == 2, "the second delivery found the first rotation"
    assert [line["outcome"] for line in outcome_lines(captured)] == ["rotated", "ignored"]


MALFORMED: list[Any] = [
    {},
    {"specversion": "1.0"},
    {"specversion": "1.0", "type": "Microsoft.KeyVault.SecretNearExpiry", "data": None},
    {"specversion": "1.0", "type": "Microsoft.KeyVault.SecretNearExpiry", "data": "text"},
    {"specversion": "1.0", "type": "Microsoft.KeyVault.SecretNearExpiry", "data": [1, 2]},
    {"specversion": "1.0", "type": ["not", "text"], "source": {"a": 1}, "data": {}},
    {"specversion": "1.0", "id": 7, "type": "Microsoft.KeyVault.SecretNearExpiry",
     "subject": "s" * 10_000, "data": {"VaultName": "kv-test", "Version": "not-a-version"}},
    {"specversion": 2, "type": "Microsoft.KeyVault.SecretExpired", "time": "2019-07-25T01:08:33Z",
     "data": {"ObjectType": "Key", "ObjectName": "k"}},
    {"eventType": "Microsoft.KeyVault.SecretNearExpiry", "data": {"Version": "\ud800"}},
    {"eventType": "Microsoft.KeyVault.SecretNearExpiry", "eventTime": "2019-07-25T01:08:33Z",
     "data": {"EXP": "soon", "NBF": [], "Id": 5}},
    {"eventType": None, "topic": None, "subject": None, "data": None},
    {"eventType": "Microsoft.Storage.BlobCreated", "data": {"url": "https://x"}},
    {"type": "Microsoft.KeyVault.SecretNearExpiry", "source": "/x", "data": {}},  # no specversion
    {"specversion": "1.0", "type": "Microsoft.KeyVault.SecretNearExpiry",
     "source": "/subscriptions/s/resourceGroups/r/providers/Microsoft.KeyVault/vaults/kv-test",
     "subject": "a/b", "data": {"ObjectName": "../x", "Version": "0" * 32}, "ext": {"deep": [[[]]]}},
]


@pytest.mark.parametrize("body", [{"specversion": "1.0", "time": "yesterday"},
                                  {"eventType": "x", "eventTime": 12}])
def test_bodies_the_workers_converter_refuses_never_reach_the_function(body: Any) -> None:
    """Stated so a future converter that accepts them gets them added to MALFORMED."""
    with pytest.raises((ValueError, TypeError)):
        decode_event(body)


@pytest.mark.parametrize("body", MALFORMED, ids=range(len(MALFORMED)))
def test_a_malformed_body_is_acknowledged_with_one_line(app: App, body: Any,
                                                        captured: CapturingHandler) -> None:
    import function_app

    function_app.keyvault_events(decode_event(body))  # the converter takes each of them
    [line] = outcome_lines(captured)
    assert line["outcome"] in ("rejected", "ignored", "refused"), line
    assert line.get("reason") or line.get("detail"), line
