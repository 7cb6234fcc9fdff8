"""Set, get, list, update and validation through the real SecretClient over HTTPS."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.keyvault.secrets import SecretClient

from twins.keyvault import KeyVaultTwin

API_VERSION = "2026-04-01"


def test_set_then_get_latest_and_by_version(client: SecretClient) -> None:
    first = client.set_secret("db-password", "s3cr3t-1", tags={"owner": "team"}, content_type="text/plain")
    second = client.set_secret("db-password", "s3cr3t-2")

    assert first.value == "s3cr3t-1"
    assert first.properties.tags == {"owner": "team"}
    assert first.properties.content_type == "text/plain"
    assert first.properties.enabled is True
    assert first.properties.recovery_level == "Recoverable+Purgeable"
    assert first.properties.recoverable_days == 90
    assert len(first.properties.version or "") == 32
    assert client.get_secret("db-password").value == "s3cr3t-2"
    assert client.get_secret("db-password").properties.version == second.properties.version
    assert client.get_secret("db-password", first.properties.version).value == "s3cr3t-1"


def test_tags_and_attributes_are_per_version(client: SecretClient) -> None:
    expires = datetime.now(UTC).replace(microsecond=0) + timedelta(days=60)
    first = client.set_secret("api-key", "v1", tags={"type": "username"}, expires_on=expires)
    client.set_secret("api-key", "v2")

    latest = client.get_secret("api-key")
    assert latest.properties.tags is None
    assert latest.properties.expires_on is None
    old = client.get_secret("api-key", first.properties.version)
    assert old.properties.tags == {"type": "username"}
    assert old.properties.expires_on == expires


def test_names_are_case_insensitive_and_keep_the_created_case(client: SecretClient) -> None:
    client.set_secret("MySecret", "v1")
    again = client.set_secret("mysecret", "v2")

    assert again.name == "MySecret"
    assert client.get_secret("MYSECRET").value == "v2"
    assert len(list(client.list_properties_of_secret_versions("mysecret"))) == 2


def test_missing_secret_and_version_are_404_with_the_service_message(client: SecretClient) -> None:
    with pytest.raises(ResourceNotFoundError) as missing:
        client.get_secret("missing")
    assert missing.value.error is not None
    assert missing.value.error.code == "SecretNotFound"
    assert missing.value.error.message is not None
    assert missing.value.error.message.startswith(
        "A secret with (name/id) missing was not found in this key vault."
    )

    client.set_secret("present", "v")
    with pytest.raises(ResourceNotFoundError) as version:
        client.get_secret("present", "0" * 32)
    assert f"(name/id) present/{'0' * 32} was not found" in str(version.value)


def test_expired_and_not_yet_valid_versions_are_readable(client: SecretClient) -> None:
    now = datetime.now(UTC)
    client.set_secret("expired", "old", expires_on=now - timedelta(days=1))
    client.set_secret("future", "new", not_before=now + timedelta(days=1))

    assert client.get_secret("expired").value == "old"
    assert client.get_secret("future").value == "new"


def test_list_secrets_pages_with_next_link(twin: KeyVaultTwin, client: SecretClient) -> None:
    for index in range(7):
        client.set_secret(f"secret-{index}", f"value-{index}", tags={"i": str(index)})

    pages = [list(page) for page in client.list_properties_of_secrets(max_page_size=3).by_page()]

    assert [len(page) for page in pages] == [3, 3, 1]
    assert [p.name for page in pages for p in page] == [f"secret-{i}" for i in range(7)]
    assert all(p.version is None for page in pages for p in page)  # base ids in the listing
    assert pages[0][1].tags == {"i": "1"}
    listing = [r for r in twin.requests if r.path == "/secrets"]
    assert [r.query.get("maxresults") for r in listing] == ["3", "3", "3"]
    assert "$skiptoken" not in listing[0].query
    assert all("$skiptoken" in r.query for r in listing[1:])


def test_list_wire_shape_has_full_next_link_and_null_at_the_end(
    twin: KeyVaultTwin, client: SecretClient, raw: Callable[..., Any]
) -> None:
    for index in range(2):
        client.set_secret(f"s{index}", "v")

    first = raw("GET", f"/secrets?api-version={API_VERSION}&maxresults=1")
    assert first.status == 200
    assert first.headers["Content-Type"] == "application/json; charset=utf-8"
    assert "value" not in first.body["value"][0]
    link = first.body["nextLink"]
    assert link.startswith(f"{twin.url}/secrets?api-version={API_VERSION}&$skiptoken=")
    assert link.endswith("&maxresults=1")
    last = raw("GET", link[len(twin.url) :])
    assert [item["id"] for item in last.body["value"]] == [f"{twin.url}/secrets/s1"]
    assert last.body["nextLink"] is None


def test_list_versions_pages_and_orders_by_version_id(client: SecretClient) -> None:
    created = [str(client.set_secret("rotating", f"v{i}").properties.version) for i in range(5)]

    listing = client.list_properties_of_secret_versions("rotating", max_page_size=2)
    pages = [list(page) for page in listing.by_page()]

    assert [len(page) for page in pages] == [2, 2, 1]
    listed = [p.version for page in pages for p in page]
    assert listed == sorted(created)  # the service orders versions by id, not by age
    assert all(p.name == "rotating" for page in pages for p in page)


def test_maxresults_outside_1_to_25_is_rejected(client: SecretClient) -> None:
    client.set_secret("any", "v")
    with pytest.raises(HttpResponseError) as raised:
        list(client.list_properties_of_secrets(max_page_size=26))
    assert raised.value.status_code == 400
    assert raised.value.error is not None
    assert raised.value.error.code == "BadParameter"


def test_update_properties_changes_metadata_not_value(client: SecretClient, raw: Callable[..., Any]) -> None:
    created = client.set_secret("conn", "value", tags={"a": "1"}, content_type="text/plain")
    expires = datetime(2031, 1, 1, tzinfo=UTC)

    updated = client.update_secret_properties(
        "conn", tags={"b": "2"}, content_type="application/json", expires_on=expires, enabled=True
    )

    assert updated.version == created.properties.version
    assert updated.tags == {"b": "2"}
    assert updated.content_type == "application/json"
    assert updated.expires_on == expires
    latest = client.get_secret("conn")
    assert latest.value == "value"
    assert latest.properties.tags == {"b": "2"}
    patched = raw(
        "PATCH",
        f"/secrets/conn/{created.properties.version}?api-version={API_VERSION}",
        body={"tags": {"c": "3"}},
    )
    assert patched.status == 200
    assert "value" not in patched.body  # UpdateSecret answers without the value
    assert patched.body["tags"] == {"c": "3"}


def test_disabled_version_is_403_secret_disabled_and_can_be_reenabled(client: SecretClient) -> None:
    created = client.set_secret("off", "hidden", enabled=False)

    with pytest.raises(HttpResponseError) as raised:
        client.get_secret("off")
    assert raised.value.status_code == 403
    assert raised.value.error is not None
    assert raised.value.error.code == "Forbidden"
    assert raised.value.error.message == "Operation get is not allowed on a disabled secret."
    assert raised.value.error.innererror == {"code": "SecretDisabled"}

    client.update_secret_properties("off", created.properties.version, enabled=True)
    assert client.get_secret("off").value == "hidden"


@pytest.mark.parametrize(
    ("name", "value", "tags", "inner"),
    [
        ("bad_name", "v", None, None),
        ("x" * 128, "v", None, None),
        ("ok", "v", {f"t{i}": "v" for i in range(16)}, None),
        ("ok", "v", {"t": "x" * 257}, None),
        ("ok", "v", {"x" * 257: "v"}, None),
        ("ok", "x" * (25 * 1024 + 1), None, "SecretTooLarge"),
    ],
    ids=["underscore", "128-chars", "16-tags", "long-tag-value", "long-tag-name", "oversize-value"],
)
def test_invalid_sets_are_400_bad_parameter(
    client: SecretClient, name: str, value: str, tags: dict[str, str] | None, inner: str | None
) -> None:
    with pytest.raises(HttpResponseError) as raised:
        client.set_secret(name, value, tags=tags)
    assert raised.value.status_code == 400
    assert raised.value.error is not None
    assert raised.value.error.code == "BadParameter"
    if inner:
        assert raised.value.error.innererror == {"code": inner}


def test_limits_themselves_are_accepted(client: SecretClient) -> None:
    tags = {f"{i:02d}" + "k" * 254: "v" * 256 for i in range(15)}
    created = client.set_secret("x" * 127, "x" * (25 * 1024), tags=tags, content_type="c" * 255)
    assert created.properties.tags == tags


def test_invalid_name_message_names_the_name(client: SecretClient) -> None:
    with pytest.raises(HttpResponseError) as raised:
        client.get_secret("no.dots")
    assert raised.value.error is not None
    assert raised.value.error.message == "The request URI contains an invalid name: no.dots"
