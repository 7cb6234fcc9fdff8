"""Reading a secret's binding tags and value, and carrying tags to the next version."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from rotation.binding import (
    MAX_TAGS,
    TAG_ROTATION_ID,
    TAG_WRITTEN_BY,
    encode_credential,
    is_opted_in,
    is_own_write,
    read_binding,
    read_credential,
    tags_for_new_version,
)
from rotation.errors import SecretNotRotatable
from rotation.ids import RotationId
from rotation.secret_value import SecretValue

GOOD = {"rotator-target": "team-a-db"}


def test_minimal_tags_take_defaults() -> None:
    binding = read_binding(GOOD, default_validity_days=45)
    assert binding.target_id == "team-a-db"
    assert binding.validity_days == 45
    assert binding.strategy is None  # the operator's target decides the default
    assert binding.username is None


def test_every_problem_is_reported_at_once() -> None:
    tags = {"rotator-target": "Not A Target!", "rotator-validity-days": "soon",
            "rotator-admin-secret": "pg-admin", "rotator-address": "postgresql://evil/"}
    with pytest.raises(SecretNotRotatable) as caught:
        read_binding(tags, default_validity_days=90)
    message = str(caught.value)
    assert "is not a target id" in message
    assert "not a whole number" in message
    assert "tag rotator-address is no longer read" in message
    assert "tag rotator-admin-secret is no longer read" in message


@pytest.mark.parametrize("days", ["0", "3651", "-5"])
def test_validity_out_of_range(days: str) -> None:
    with pytest.raises(SecretNotRotatable, match="outside"):
        read_binding({**GOOD, "rotator-validity-days": days}, default_validity_days=90)


def test_opt_in_and_own_write_markers() -> None:
    assert is_opted_in(GOOD) and not is_opted_in({"other": "x"}) and not is_opted_in(None)
    assert not is_own_write(GOOD)
    stamped = tags_for_new_version(GOOD, rotation_id=RotationId("r1"),
                                   rotated_at=datetime(2026, 1, 1, tzinfo=UTC))
    assert is_own_write(stamped)
    assert stamped[TAG_ROTATION_ID] == "r1"
    assert {k: stamped[k] for k in GOOD} == GOOD
    assert not is_own_write({TAG_WRITTEN_BY: "akv-rotator"})  # a marker without an id is not ours


def test_tags_beyond_key_vaults_limit_are_refused_before_anything_changes() -> None:
    crowded = {**GOOD, **{f"t{i}": "x" for i in range(MAX_TAGS - len(GOOD) - 1)}}
    with pytest.raises(SecretNotRotatable, match="Key Vault allows 15"):
        tags_for_new_version(crowded, rotation_id=RotationId("r"), rotated_at=datetime.now(UTC))


def test_credential_round_trip_and_shape_errors_never_echo_the_value() -> None:
    stored = encode_credential(read_credential(
        SecretValue(json.dumps({"username": "app", "password": "hunter2-secret"})),
        "application/json", None))
    assert json.loads(stored.reveal()) == {"username": "app", "password": "hunter2-secret"}
    for raw, expected in [
        ("hunter2-secret", "not JSON"),
        ('["hunter2-secret"]', "JSON object"),
        ('{"username": "app"}', "exactly one of 'password'"),
        ('{"username": "app", "password": "hunter2-secret", "token": "hunter2"}', "exactly one"),
        ('{"username": "app", "password": ""}', "no string 'password'"),
        ('{"username": "app", "token": "hunter2-secret", "tokenId": "7"}', "positive whole"),
        ('{"username": "app", "token": "hunter2-secret", "tokenId": true}', "positive whole"),
        ('{"username": "app", "token": "hunter2-secret", "tokenUuid": "a b"}', "a uuid"),
        ('{"username": "app", "password": "hunter2-secret", "tokenUuid": "ab"}', "only beside"),
        ('{"username": "app", "token": "hunter2", "tokenUuid": "a", "tokenId": 1}', "one of"),
        ('{"password": "hunter2-secret"}', "no username"),
    ]:
        with pytest.raises(SecretNotRotatable, match=expected) as caught:
            read_credential(SecretValue(raw), "application/json", None)
        assert "hunter2" not in str(caught.value)
    with pytest.raises(SecretNotRotatable, match="content type"):
        read_credential(SecretValue("{}"), "text/plain", None)
    with pytest.raises(SecretNotRotatable, match="disagrees"):
        read_credential(SecretValue('{"username": "a", "token": "t"}'), None, "b")
    with pytest.raises(SecretNotRotatable, match="disagrees"):
        read_credential(SecretValue('{"username": "a", "password": "p"}'), None, "b")


@pytest.mark.parametrize("document", [
    {"username": "svc", "token": "11" + "ab" * 16, "tokenUuid": "7d4c-0e1f"},
    {"username": "svc", "token": "nbt_abc.def", "tokenId": 42},
    {"username": "svc", "token": "0123456789abcdef0123456789abcdef01234567"},
])
def test_token_values_round_trip_with_their_reference(document: dict[str, object]) -> None:
    credential = read_credential(SecretValue(json.dumps(document)), "application/json", None)
    assert credential.secret_field == "token" and credential.username == "svc"
    assert json.loads(encode_credential(credential).reveal()) == document


def test_password_tags_choose_a_preset_and_a_length() -> None:
    binding = read_binding({**GOOD, "rotator-password-alphabet": " Alphanumeric ",
                            "rotator-password-length": "64"}, default_validity_days=45)
    assert (binding.password_preset, binding.password_length) == ("alphanumeric", 64)
    untagged = read_binding(GOOD, default_validity_days=45)
    assert (untagged.password_preset, untagged.password_length) == (None, None)


def test_bad_password_tags_are_refused_together_naming_the_presets() -> None:
    tags = {**GOOD, "rotator-password-alphabet": "base64", "rotator-password-length": "12",
            "rotator-validity-days": "never"}
    with pytest.raises(SecretNotRotatable) as caught:
        read_binding(tags, default_validity_days=45)
    message = str(caught.value)
    assert ("tag rotator-password-alphabet='base64' names no password preset; "
            "presets: url-safe, alphanumeric") in message
    assert "tag rotator-password-length='12' is not a whole number of characters in 16..128" in message
    assert "rotator-validity-days" in message


@pytest.mark.parametrize("length", ["129", "4O", "²⁰", "20.5", "-20"])
def test_password_lengths_are_ascii_digits_in_range(length: str) -> None:
    with pytest.raises(SecretNotRotatable, match="rotator-password-length"):
        read_binding({**GOOD, "rotator-password-length": length}, default_validity_days=45)


def test_the_maximum_grace_defaults_to_the_grace_and_is_checked_like_it() -> None:
    assert read_binding({**GOOD, "rotator-grace-hours": "6"}, default_validity_days=90,
                        default_grace_hours=24).propagation_wait_hours == 6
    assert read_binding({**GOOD, "rotator-max-grace-hours": "2.5"}, default_validity_days=90,
                        default_grace_hours=24).propagation_wait_hours == 2.5
    for bad, problem in (("soon", "is not a number of hours"), ("721", "outside 0..720"),
                         ("nan", "outside 0..720"), ("-1", "outside 0..720")):
        with pytest.raises(SecretNotRotatable, match=f"tag rotator-max-grace-hours=.*{problem}"):
            read_binding({**GOOD, "rotator-max-grace-hours": bad}, default_validity_days=90)
