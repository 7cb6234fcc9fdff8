"""What the twin's controllers compute exactly as ESO and Reloader do: hashes, names, parsing, queues.

The expected values come from the upstream projects' own tests where they have them (ESO's
``runtime/esutils/utils_test.go`` ``TestObjectHash`` at v2.9.0), otherwise from the Go code's
rules restated in the reference (``eso-and-reloader.md`` sections 1.2, 4.2, 5.2, 5.3).
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import threading
import time

import pytest

from twins.kubernetes.controllers import gjson
from twins.kubernetes.controllers.gocompat import (
    go_format,
    go_search,
    meta_hash,
    object_hash,
    parse_duration,
    resource_version,
    rfc3339,
)
from twins.kubernetes.controllers.reloader import env_var_name, secret_sha
from twins.kubernetes.controllers.runtime import Result, WorkQueue
from twins.kubernetes.controllers.vaults import normalise_vault_url


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


# -- ESO's hashes -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "c461202a18e99215f121936fb2452e03843828e448a00a53f285a6fc"),
        ("hello there", "f78681ec611ebaeea0689bff6c7812a83ff98a7faba986d9af76c999"),
        (
            {"foo": b"value1", "bar": b"value2"},
            "1bed8bcbcb4547ffe19a19cd47d9078e84aa6598266d86b99f992d64",
        ),
    ],
    ids=["nil", "string", "map-of-bytes"],
)
def test_object_hash_matches_esos_own_test_vectors(value: object, expected: str) -> None:
    assert object_hash(value) == expected


def test_go_rendering_of_the_meta_struct_sorts_keys_and_prints_nil_maps_empty() -> None:
    assert go_format({"b": b"\x01", "a": b""}) == "map[a:[] b:[1]]"
    assert meta_hash(None, None) == object_hash_of("{annotations:map[] labels:map[]}")
    assert meta_hash({"force-sync": "1", "a": "x"}, {"app": "db"}) == object_hash_of(
        "{annotations:map[a:x force-sync:1] labels:map[app:db]}"
    )


def object_hash_of(rendering: str) -> str:
    return hashlib.sha3_224(rendering.encode()).hexdigest()


def test_synced_resource_version_is_generation_dash_meta_hash() -> None:
    metadata = {"generation": 3, "annotations": {"external-secrets.io/force-sync": "r1"}}
    version = resource_version(metadata)
    assert version == f"3-{meta_hash(metadata['annotations'], None)}"
    changed = resource_version({**metadata, "annotations": {"external-secrets.io/force-sync": "r2"}})
    assert changed != version and changed.startswith("3-")


# -- Go parsing and formatting -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1h0m0s", 3600.0),
        ("0", 0.0),
        ("0s", 0.0),
        ("90s", 90.0),
        ("1m30s", 90.0),
        ("1.5h", 5400.0),
        ("500ms", 0.5),
    ],
)
def test_parse_duration_as_go(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "1", "1d", "h", "1h-1m"])
def test_parse_duration_refuses_what_go_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


def test_rfc3339_is_whole_seconds_utc() -> None:
    assert rfc3339(1786500000.987) == "2026-08-12T02:00:00Z"


def test_go_search_is_unanchored_re2_and_a_bad_pattern_matches_nothing() -> None:
    assert go_search("db-", "app-db-password")
    assert not go_search("^db-", "app-db-password")
    assert not go_search("(?=db)", "db")  # lookahead: Go and RE2 refuse it


# -- gjson paths (remoteRef.property) ----------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("user", "app"),
        ("port", "5432"),
        ("ratio", "1.50"),
        ("nested.host", "db.internal"),
        ("list.1", "b"),
        ("nested", '{"host": "db.internal"}'),
        ("empty", ""),
        ("dotted\\.key", "yes"),
        ("missing", None),
        ("list.9", None),
    ],
)
def test_gjson_get(path: str, expected: str | None) -> None:
    value = (
        '{"user": "app", "port": 5432, "ratio": 1.50, "nested": {"host": "db.internal"}, '
        '"list": ["a", "b"], "empty": null, "dotted.key": "yes"}'
    )
    assert gjson.get(value, path) == expected


def test_gjson_raw_object_keeps_raw_json_for_non_strings() -> None:
    assert gjson.raw_object('{"a": "x", "n": 1.0, "o": {"k": [1, 2]}, "z": null}') == {
        "a": "x",
        "n": b"1.0",
        "o": b'{"k": [1, 2]}',
        "z": "",
    }
    with pytest.raises(ValueError, match="cannot unmarshal array"):
        gjson.raw_object("[1]")


# -- Reloader ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "variable"),
    [("db", "STAKATER_DB_SECRET"), ("payments-db", "STAKATER_PAYMENTS_DB_SECRET"),
     ("-a..b-", "STAKATER_A_B__SECRET"), ("app.v2", "STAKATER_APP_V2_SECRET")],
)  # fmt: skip
def test_env_var_name_as_convert_to_env_var_name(name: str, variable: str) -> None:
    assert env_var_name(name) == variable


def test_secret_sha_is_sha1_of_sorted_pairs_of_decoded_values() -> None:
    data = {"password": b64("s3cr3t"), "user": b64("app")}
    assert secret_sha(data) == hashlib.sha1(b"password=s3cr3t;user=app", usedforsecurity=False).hexdigest()
    assert secret_sha({}) == hashlib.sha1(b"", usedforsecurity=False).hexdigest()


# -- vault URLs --------------------------------------------------------------------------------


def test_vault_urls_compare_case_insensitively_without_trailing_slash_or_default_port() -> None:
    assert (
        normalise_vault_url("https://KV-Payments.vault.azure.net/") == "https://kv-payments.vault.azure.net"
    )
    assert normalise_vault_url("https://kv.vault.azure.net:443") == "https://kv.vault.azure.net"
    assert normalise_vault_url("https://127.0.0.1:8443/") == "https://127.0.0.1:8443"


# -- the work queue ----------------------------------------------------------------------------


def test_work_queue_deduplicates_and_reprocesses_a_key_added_while_in_hand() -> None:
    seen: list[str] = []
    release = threading.Event()

    def handler(key: str) -> Result | None:
        seen.append(key)
        if len(seen) == 1:
            release.wait(5)
        return None

    queue: WorkQueue[str] = WorkQueue("test", handler)
    queue.start()
    try:
        queue.add("a")
        deadline = time.monotonic() + 5
        while not seen and time.monotonic() < deadline:
            time.sleep(0.005)
        queue.add("a")  # in hand: processed once more afterwards
        queue.add("a")  # and only once
        release.set()
        while not queue.idle() and time.monotonic() < deadline:
            time.sleep(0.005)
    finally:
        queue.stop()
    assert seen == ["a", "a"]


def test_work_queue_backs_off_exponentially_on_requeue() -> None:
    times: list[float] = []

    def handler(key: str) -> Result | None:
        times.append(time.monotonic())
        return Result(requeue=True) if len(times) < 4 else None

    queue: WorkQueue[str] = WorkQueue("test", handler, backoff=(0.02, 1.0))
    queue.start()
    try:
        queue.add("a")
        deadline = time.monotonic() + 5
        while len(times) < 4 and time.monotonic() < deadline:
            time.sleep(0.005)
    finally:
        queue.stop()
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert len(gaps) == 3
    assert gaps[0] >= 0.02 and gaps[1] >= 0.04 and gaps[2] >= 0.08
