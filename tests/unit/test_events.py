"""Event parsing over every shape Microsoft has published, and the ones it must refuse."""

from __future__ import annotations

from datetime import UTC, datetime

import azure.functions as func
import pytest

from handlers.eventgrid import envelope_of
from rotation.events import InvalidEvent, KeyVaultEvent, UnhandledEvent, parse_event
from tests.support.payloads import decode_event, load_payload

VERSION = "ee059b2bb5bc48398a53b168c6cdcb10"


def parse_payload(payload: dict) -> KeyVaultEvent | UnhandledEvent:
    """Through the worker's converter and the function's own mapping, as in production."""
    return parse_event(**envelope_of(decode_event(payload)))


@pytest.mark.parametrize(
    ("payload", "kind", "nbf"),
    [
        ("near_expiry_pascal", "SecretNearExpiry", 1559081980),
        ("new_version_doc_sample", "SecretNewVersionCreated", 1559081980),
        ("near_expiry_camel_2020", "SecretNearExpiry", 1559081980),
        ("expired_pascal_spaces_2021", "SecretExpired", None),
        ("cloudevents_new_version_doc_sample", "SecretNewVersionCreated", 1559081980),
        ("cloudevents_near_expiry", "SecretNearExpiry", 1559081980),
        ("cloudevents_expired", "SecretExpired", 1559081980),
    ],
)
def test_every_published_shape_parses_to_the_same_typed_event(payload: str, kind: str,
                                                              nbf: int | None) -> None:
    parsed = parse_payload(load_payload(payload))
    assert isinstance(parsed, KeyVaultEvent)
    assert parsed.kind == kind
    assert parsed.vault == "sample-kv"
    assert parsed.secret == "newsecret"
    assert parsed.version == VERSION
    assert parsed.expires_on == datetime.fromtimestamp(1559082102, tz=UTC)
    assert parsed.not_before == (datetime.fromtimestamp(nbf, tz=UTC) if nbf else None)


def test_numeric_string_and_float_timestamps_agree() -> None:
    payload = load_payload("near_expiry_pascal")
    results = []
    for exp in (1559082102, "1559082102", " 1559082102 ", 1559082102.0):
        payload["data"]["EXP"] = exp
        parsed = parse_payload(payload)
        assert isinstance(parsed, KeyVaultEvent)
        results.append(parsed.expires_on)
    assert len(set(results)) == 1


def test_missing_nbf_and_exp_keys_mean_none() -> None:
    payload = load_payload("near_expiry_pascal")
    del payload["data"]["NBF"], payload["data"]["EXP"]
    parsed = parse_payload(payload)
    assert isinstance(parsed, KeyVaultEvent)
    assert parsed.not_before is None and parsed.expires_on is None


def test_garbage_timestamp_is_a_clear_error() -> None:
    payload = load_payload("near_expiry_pascal")
    payload["data"]["EXP"] = "next tuesday"
    with pytest.raises(InvalidEvent, match="EXP must be Unix seconds"):
        parse_payload(payload)


def test_other_event_types_are_unhandled_not_errors() -> None:
    payload = load_payload("near_expiry_pascal")
    payload["eventType"] = "Microsoft.KeyVault.VaultAccessPolicyChanged"
    parsed = parse_payload(payload)
    assert isinstance(parsed, UnhandledEvent)
    assert parsed.event_type == "Microsoft.KeyVault.VaultAccessPolicyChanged"


def test_key_events_are_unhandled() -> None:
    parsed = parse_payload(load_payload("key_near_expiry"))
    assert isinstance(parsed, UnhandledEvent)


def test_secret_event_about_a_key_object_is_unhandled() -> None:
    payload = load_payload("near_expiry_pascal")
    payload["data"]["ObjectType"] = "Key"
    parsed = parse_payload(payload)
    assert isinstance(parsed, UnhandledEvent)
    assert "not a secret" in parsed.reason


def test_event_type_is_matched_without_case_or_padding() -> None:
    payload = load_payload("near_expiry_pascal")
    payload["eventType"] = " microsoft.keyvault.secretnearexpiry "
    parsed = parse_payload(payload)
    assert isinstance(parsed, KeyVaultEvent) and parsed.kind == "SecretNearExpiry"


def test_both_schemas_give_the_same_typed_event() -> None:
    grid, cloud = parse_payload(load_payload("near_expiry_pascal")), parse_payload(
        load_payload("cloudevents_near_expiry"))
    assert isinstance(grid, KeyVaultEvent) and isinstance(cloud, KeyVaultEvent)
    assert (grid.kind, grid.vault, grid.secret, grid.version, grid.not_before, grid.expires_on,
            grid.event_time) == (cloud.kind, cloud.vault, cloud.secret, cloud.version,
                                 cloud.not_before, cloud.expires_on, cloud.event_time)
    assert type(decode_event(load_payload("cloudevents_near_expiry"))).__name__ == "CloudEvent"


def test_a_cloudevent_read_as_an_event_grid_event_is_explained() -> None:
    """What a worker with azure-functions < 1.25 hands over for a CloudEvents delivery."""
    body = load_payload("cloudevents_near_expiry")
    event = func.EventGridEvent(id=body["id"], data=body["data"], topic=None, subject=body["subject"],
                                event_type=None, event_time=None, data_version=None)
    with pytest.raises(InvalidEvent, match="PYTHON_ISOLATE_WORKER_DEPENDENCIES=1"):
        parse_event(**envelope_of(event))


def test_name_and_version_fall_back_to_subject_topic_and_id() -> None:
    payload = load_payload("near_expiry_pascal")
    for key in ("VaultName", "ObjectName", "Version"):
        del payload["data"][key]
    parsed = parse_payload(payload)
    assert isinstance(parsed, KeyVaultEvent)
    assert (parsed.vault, parsed.secret, parsed.version) == ("sample-kv", "newsecret", VERSION)


def test_vault_name_disagreeing_with_topic_is_refused() -> None:
    payload = load_payload("near_expiry_pascal")
    payload["data"]["VaultName"] = "other-kv"
    with pytest.raises(InvalidEvent, match="disagrees"):
        parse_payload(payload)


def test_missing_version_everywhere_names_every_problem() -> None:
    with pytest.raises(InvalidEvent) as caught:
        parse_event(event_id="e1", event_type="Microsoft.KeyVault.SecretNearExpiry", topic=None,
                    subject="", data={"EXP": "x"})
    message = str(caught.value)
    for problem in ("no VaultName", "no ObjectName", "no Version", "EXP must be Unix seconds"):
        assert problem in message


def test_data_as_json_text_and_non_object_data() -> None:
    parsed = parse_event(
        event_id="e", event_type="Microsoft.KeyVault.SecretNearExpiry", topic=None, subject="s",
        data='{"VaultName": "kv1", "ObjectName": "s", "Version": "ABC123"}',
    )
    assert isinstance(parsed, KeyVaultEvent) and parsed.version == "abc123"
    with pytest.raises(InvalidEvent, match="JSON object"):
        parse_event(event_id="e", event_type="Microsoft.KeyVault.SecretNearExpiry", topic=None,
                    subject="s", data=[1, 2])
