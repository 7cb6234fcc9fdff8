"""Throttling is the vault's load, not a rotation's failure: a rotation Key Vault keeps
answering 429 comes back later (with jitter) as often as it takes, without using up its
attempts, and finishes once the vault has room; any other transient failure still ends a
rotation after ``ROTATOR_MAX_ATTEMPTS`` (3 in these tests).
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from azure.keyvault.secrets import SecretClient

from handlers.services import get_services, reset_services
from tests.integration.conftest import App, SecretFactory
from tests.support.postgres import PostgresServer
from twins.keyvault import KeyVaultTwin

ATTEMPTS = 3  # ROTATOR_MAX_ATTEMPTS in app_settings


def latest(app: App, name: str) -> dict[str, Any]:
    status, body = app.get(f"secrets/{name}/rotations", {"name": name})
    assert status == 200
    return dict(body["rotations"][0])


def next_attempt(app: App, name: str) -> dict[str, Any]:
    """Wait for the rotation's next attempt to be due, then sweep once; the record after."""
    due = latest(app, name)["nextAttemptAt"]
    if due:
        time.sleep(max(0.0, (datetime.fromisoformat(due) - datetime.now(UTC)).total_seconds()) + 1.05)
    app.sweep()
    return latest(app, name)


def throttled_lines(app: App) -> int:
    return sum("rotation throttled" in line for line in app.said.log_lines)


def test_a_throttled_rotation_outlasts_its_attempts_and_finishes_when_the_vault_has_room(
        app: App, db_secret: SecretFactory, twin: KeyVaultTwin, kv: SecretClient,
        postgres: PostgresServer) -> None:
    db = db_secret()
    twin.inject_fault(status=429, count=10_000, method="PUT", path_contains=db.name)  # no Retry-After
    status, body = app.post_rotate(db.name)
    assert status == 503 and body["error"]["code"] == "Throttled"
    for _ in range(ATTEMPTS + 1):
        record = next_attempt(app, db.name)
        assert record["status"] == "running", record
    assert throttled_lines(app) >= ATTEMPTS + 2, "more throttled attempts than attempts allowed"
    assert record["attempts"] <= 1 and "429" in record["lastError"]

    twin.clear_faults()
    record = next_attempt(app, db.name)
    assert record["status"] == "succeeded", record
    current = json.loads(kv.get_secret(db.name).value or "")
    assert postgres.can_login(db.role, current["password"])


def test_any_other_transient_failure_still_ends_a_rotation_after_its_attempts(
        app: App, db_secret: SecretFactory, twin: KeyVaultTwin) -> None:
    db = db_secret()
    twin.inject_fault(status=503, count=10_000, method="PUT", path_contains=db.name)
    status, _ = app.post_rotate(db.name)
    assert status == 503
    for _ in range(ATTEMPTS):
        record = next_attempt(app, db.name)
        if record["status"] != "running":
            break
    assert record["status"] == "failed", record
    assert record["lastError"].startswith(f"gave up after {ATTEMPTS} attempts")
    assert throttled_lines(app) == 0


def _released_wait(name: str, throttled_at: datetime) -> float:
    """Seconds from the throttled release to the rotation's next attempt, from the journal."""
    journal = get_services().journal
    record = next(r for r in journal.unfinished() if r.secret == name)
    assert record.next_attempt_at is not None
    return (record.next_attempt_at - throttled_at).total_seconds()


@pytest.mark.parametrize("retry_after", [None, 12])
def test_a_throttled_rotation_is_due_again_before_event_grids_first_redelivery(
        app: App, db_secret: SecretFactory, twin: KeyVaultTwin, monkeypatch: pytest.MonkeyPatch,
        retry_after: int | None) -> None:
    """Not after the 60 s attempt back-off (Event Grid redelivers after 10 s, then 30 s,
    1 min...): after 2.5-7.5 s, or after the server's Retry-After spread by 1-1.5x."""
    monkeypatch.setenv("ROTATOR_ATTEMPT_BACKOFF_SECONDS", "60")
    monkeypatch.setenv("ROTATOR_RETRY_MAX_SECONDS", "0.05")  # the client's own waits stay short
    reset_services()
    waits = []
    for _ in range(4):
        db = db_secret()
        twin.inject_fault(status=429, count=10_000, method="PUT", path_contains=db.name,
                          retry_after=retry_after)
        status, body = app.post_rotate(db.name)
        released = datetime.now(UTC)
        assert status == 503 and body["error"]["code"] == "Throttled"
        waits.append(_released_wait(db.name, released))
        twin.clear_faults()
    low, high = (2.5, 7.5) if retry_after is None else (retry_after, retry_after * 1.5)
    assert all(low - 0.5 <= wait <= high for wait in waits), waits
    assert len({round(wait, 3) for wait in waits}) > 1, f"no jitter: {waits}"


@pytest.mark.parametrize(("retry_after", "retries"), [(21, 0), (1, 2)])
def test_an_event_invocation_starts_no_retry_that_would_outlast_event_grids_wait(
        app: App, db_secret: SecretFactory, twin: KeyVaultTwin, monkeypatch: pytest.MonkeyPatch,
        retry_after: int, retries: int) -> None:
    """Event Grid counts a delivery unanswered after 30 s as failed: within the invocation's
    25 s budget no retry starts whose wait (the server's Retry-After) would end less than 5 s
    before it. A short Retry-After still gets every retry."""
    monkeypatch.setenv("ROTATOR_RETRY_MAX_SECONDS", "30")
    reset_services()
    db = db_secret()
    twin.inject_fault(status=429, count=10_000, method="PUT", path_contains=db.name,
                      retry_after=retry_after)
    with pytest.raises(Exception, match="429"):
        app.deliver(twin.emit(db.name, "Microsoft.KeyVault.SecretNearExpiry"))
    started = [line for line in app.said.log_lines if "transient failure, retrying" in line]
    assert len(started) == retries, started
    assert throttled_lines(app) == 1
