"""The sweeper looks only at companion secrets that can hold an orphan pending version.

Listing a companion's versions is one Key Vault call; a sweep that made it for every companion
would cost a rotated vault more than Key Vault's read quota (issue #14). These tests count the
version listings in the Key Vault twin's request log: none in a settled vault, and every orphan
case still found and disabled (the cases are in :mod:`rotation.sweeper`'s docstring).

The twin's clock can be set back (:class:`VaultClock`), so a vault can settle "an hour ago", as
it would between two sweeps in production, without a test that waits.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from azure.keyvault.secrets import SecretClient
from azure.keyvault.secrets._shared import http_challenge_cache

from handlers.services import get_services
from rotation.journal import Begun
from rotation.pending import pending_name
from tests.integration.conftest import App, DatabaseSecret, SecretFactory
from tests.journal.records import record
from twins.keyvault import KeyVaultTwin

HOUR = 3600.0


class VaultClock:
    """The twin's clock: real time, less ``behind`` seconds."""

    def __init__(self) -> None:
        self.behind = 0.0

    def __call__(self) -> float:
        return time.time() - self.behind


@pytest.fixture
def vault_clock() -> VaultClock:
    return VaultClock()


@pytest.fixture
def twin(tmp_path: Path, vault_clock: VaultClock) -> Iterator[KeyVaultTwin]:
    """The suite's twin (tests/conftest.py), on a clock the test may set back."""
    http_challenge_cache.clear()
    with KeyVaultTwin(vault_name="kv-test", cert_dir=tmp_path / "twin", clock=vault_clock) as running:
        yield running
    http_challenge_cache.clear()


def versions_listed(twin: KeyVaultTwin, since: int) -> list[str]:
    """The secrets whose versions were listed after the first ``since`` requests."""
    listed = []
    for request in twin.requests.snapshot()[since:]:
        parts = request.path.strip("/").split("/")
        if request.method == "GET" and len(parts) == 3 and parts[0] == "secrets" \
                and parts[2] == "versions":
            listed.append(parts[1])
    return listed


def sweep_counting(app: App, twin: KeyVaultTwin) -> list[str]:
    """Sweep once; the companions whose versions the sweep listed."""
    since = len(twin.requests)
    app.sweep()
    return versions_listed(twin, since)


def rotated(app: App, db: DatabaseSecret) -> str:
    """Rotate on demand (single-user: finished at once); the rotation's id."""
    status, body = app.post_rotate(db.name)
    assert (status, body["status"]) == (200, "succeeded"), body
    return str(body["rotationId"])


def enabled_versions(kv: SecretClient, name: str) -> set[str]:
    return {v.version or "" for v in kv.list_properties_of_secret_versions(name) if v.enabled}


@pytest.fixture
def settled(app: App, twin: KeyVaultTwin, vault_clock: VaultClock,
            db_secret: SecretFactory) -> list[tuple[DatabaseSecret, str]]:
    """Three secrets rotated an hour ago (each companion's only version disabled), swept
    since: the vault as it looks between rotations."""
    vault_clock.behind = HOUR
    made = [db_secret(expires_in_days=80) for _ in range(3)]
    done = [(db, rotated(app, db)) for db in made]
    db_secret(expires_in_days=80)  # never rotated: no companion
    vault_clock.behind = 0.0
    first = sweep_counting(app, twin)
    assert sorted(first) == sorted(pending_name(db.name) for db, _ in done), \
        "the first sweep has no note of an earlier look: it looks at every companion"
    return done


def test_a_settled_vault_is_swept_without_listing_any_companion(
        app: App, twin: KeyVaultTwin, kv: SecretClient,
        settled: list[tuple[DatabaseSecret, str]]) -> None:
    assert sweep_counting(app, twin) == []
    assert sweep_counting(app, twin) == []
    for db, _ in settled:
        assert enabled_versions(kv, pending_name(db.name)) == set()


@pytest.mark.parametrize("written_hours_ago", [0.0, 1.0])
def test_an_enabled_orphan_is_disabled_whenever_it_was_written(
        app: App, twin: KeyVaultTwin, kv: SecretClient, vault_clock: VaultClock,
        settled: list[tuple[DatabaseSecret, str]], written_hours_ago: float) -> None:
    (db, rotation_id), *_ = settled
    # A pending write whose response was lost: enabled, tagged, never journaled; its rotation
    # has finished since. Its companion's latest version is enabled (case a), whether or not
    # it changed since the last look (case b).
    vault_clock.behind = written_hours_ago * HOUR
    orphan = kv.set_secret(pending_name(db.name), '{"username": "x", "password": "lost-1"}',
                           content_type="application/json",
                           tags={"rotator-rotation-id": rotation_id})
    vault_clock.behind = 0.0
    assert sweep_counting(app, twin) == [pending_name(db.name)]
    assert orphan.properties.version not in enabled_versions(kv, pending_name(db.name))
    assert enabled_versions(kv, pending_name(db.name)) == set()


def test_an_orphan_behind_a_later_finished_rotation_is_disabled(
        app: App, twin: KeyVaultTwin, kv: SecretClient,
        settled: list[tuple[DatabaseSecret, str]]) -> None:
    (db, rotation_id), *_ = settled
    orphan = kv.set_secret(pending_name(db.name), '{"username": "x", "password": "lost-2"}',
                           content_type="application/json",
                           tags={"rotator-rotation-id": rotation_id})
    rotated(app, db)  # between two sweeps: its own pending version, now the latest, disabled
    assert enabled_versions(kv, pending_name(db.name)) == {orphan.properties.version}
    assert sweep_counting(app, twin) == [pending_name(db.name)]
    assert enabled_versions(kv, pending_name(db.name)) == set()


def test_an_old_orphan_of_a_secret_with_an_unfinished_rotation_is_disabled(
        app: App, twin: KeyVaultTwin, kv: SecretClient, vault_clock: VaultClock,
        settled: list[tuple[DatabaseSecret, str]]) -> None:
    (db, _), *_ = settled
    # An enabled version behind a disabled latest one, both from before the last look: the
    # listing says nothing about it (written by hand), so only an unfinished rotation of the
    # secret makes the sweeper look (case c).
    vault_clock.behind = HOUR
    orphan = kv.set_secret(pending_name(db.name), '{"username": "x", "password": "old-1"}',
                           tags={"rotator-rotation-id": "not-one-of-ours"})
    later = kv.set_secret(pending_name(db.name), '{"username": "x", "password": "old-2"}')
    kv.update_secret_properties(pending_name(db.name), later.properties.version, enabled=False)
    vault_clock.behind = 0.0
    assert sweep_counting(app, twin) == [], "nothing says this companion changed"
    assert enabled_versions(kv, pending_name(db.name)) == {orphan.properties.version}

    journal = get_services().rotation.journal  # a worker elsewhere holds a rotation's lease
    now = datetime.now(UTC)
    begun = journal.begin(record(version=kv.get_secret(db.name).properties.version or "",
                                 secret=db.name, vault=twin.vault_name), now=now)
    assert isinstance(begun, Begun)
    journal.claim(begun.record, owner="elsewhere", now=now, ttl=timedelta(minutes=5))
    assert sweep_counting(app, twin) == [pending_name(db.name)]
    assert enabled_versions(kv, pending_name(db.name)) == set()


def test_the_last_look_is_noted_only_when_every_companion_could_be_looked_at(
        app: App, twin: KeyVaultTwin, kv: SecretClient,
        settled: list[tuple[DatabaseSecret, str]]) -> None:
    journal = get_services().rotation.journal
    noted = journal.companions_checked(twin.vault_name)
    assert noted is not None
    (db, rotation_id), (other, _), *_ = settled
    for secret, password in ((db, "lost-3"), (other, "lost-4")):
        kv.set_secret(pending_name(secret.name), json.dumps({"username": "x", "password": password}),
                      tags={"rotator-rotation-id": rotation_id})
    twin.inject_fault(status=503, count=1000, method="GET",
                      path_contains=f"{pending_name(db.name)}/versions")
    sweep_counting(app, twin)
    twin.clear_faults()
    assert enabled_versions(kv, pending_name(other.name)) == set(), "the others were looked at"
    assert len(enabled_versions(kv, pending_name(db.name))) == 1
    assert journal.companions_checked(twin.vault_name) == noted, "the failed look is not noted"
    assert pending_name(db.name) in sweep_counting(app, twin)
    assert enabled_versions(kv, pending_name(db.name)) == set()
    after = journal.companions_checked(twin.vault_name)
    assert after is not None and after > noted
