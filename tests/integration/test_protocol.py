"""The rotation protocol in one process: journal, idempotency, failure, sweeper, history."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime

import psycopg
import pytest
from azure.core.exceptions import HttpResponseError
from azure.keyvault.secrets import SecretClient
from psycopg import sql

from rotation.errors import TransientError
from rotation.pending import pending_name
from tests.integration.conftest import App, SecretFactory, near_expiry, versions_of
from tests.support.payloads import load_payload, retarget
from tests.support.postgres import PostgresServer
from tests.support.targets import pg_target
from twins.keyvault import KeyVaultTwin


def history(app: App, secret: str) -> list[dict]:
    status, body = app.get(f"secrets/{secret}/rotations", {"name": secret})
    assert status == 200, body
    return list(body["rotations"])


def current_password(kv: SecretClient, name: str) -> str:
    return str(json.loads(kv.get_secret(name).value or "{}")["password"])


def assert_pending_cleared(kv: SecretClient, secret: str) -> None:
    versions = list(kv.list_properties_of_secret_versions(pending_name(secret)))
    assert versions and not [v.version for v in versions if v.enabled]
    with pytest.raises(HttpResponseError) as refused:
        kv.get_secret(pending_name(secret))
    assert refused.value.status_code == 403  # Key Vault will not hand out a disabled value


def test_rotation_is_journaled_step_by_step_and_served_as_history(
    app: App, twin: KeyVaultTwin, kv: SecretClient, db_secret: SecretFactory,
) -> None:
    secret = db_secret()
    app.deliver(near_expiry(twin, secret.name, secret.version))
    (record,) = history(app, secret.name)
    assert record["status"] == "succeeded" and record["step"] == "finished"
    assert [s["step"] for s in record["steps"]] == [
        "prepared", "applied", "verified", "promoted", "propagated", "retired", "finished"]
    assert record["oldVersion"] == secret.version
    assert record["newVersion"] == kv.get_secret(secret.name).properties.version
    assert record["trigger"]["source"] == "event"
    assert record["trigger"]["eventType"] == "SecretNearExpiry"
    assert record["attempts"] == 1 and record["lastError"] is None
    assert record["pendingSecret"] == pending_name(secret.name)
    status, single = app.get(f"rotations/{record['rotationId']}", {"id": record["rotationId"]})
    assert status == 200 and single == record
    assert_pending_cleared(kv, secret.name)


def test_a_first_attempt_asks_each_thing_once(
    app: App, twin: KeyVaultTwin, kv: SecretClient, db_secret: SecretFactory,
) -> None:
    """The event's read of the secret serves the whole first attempt, nothing is looked for
    that nothing can have stored yet, and steps that change nothing share a journal write
    (docs/protocol.md, "What one rotation costs")."""
    from handlers.services import get_services

    secret = db_secret()
    event = near_expiry(twin, secret.name, secret.version)
    seen = len(twin.requests.snapshot())
    app.deliver(event)
    asked = [(r.method, r.path.rstrip("/")) for r in twin.requests.snapshot()[seen:]
             if r.authenticated]
    (record,) = history(app, secret.name)
    pending = f"/secrets/{pending_name(secret.name)}"
    assert asked == [
        ("GET", f"/secrets/{secret.name}"),  # the event's checks, and the attempt's context
        ("PUT", pending),  # prepare: the pending credential, before the login changes
        ("GET", f"/secrets/{secret.name}"),  # promote: superseded, or promoted already?
        ("PUT", f"/secrets/{secret.name}"),
        ("PATCH", f"{pending}/{record['pendingVersion']}"),  # finish
    ]
    # begin (with the lease), prepared, applied, promoted (+ verified), close (+ the rest):
    # SQLite's etag counts the writes of the rotation's row.
    stored = get_services().journal.get(record["rotationId"])
    assert stored is not None and stored.etag == "5"


def test_history_errors(app: App) -> None:
    assert app.get("rotations/nope", {"id": "nope"})[0] == 400
    status, body = app.get(f"rotations/{'f' * 32}", {"id": "f" * 32})
    assert status == 404 and "no rotation" in body["error"]["message"]
    status, body = app.get("secrets/x/rotations", {"name": "x"}, params={"limit": "0"})
    assert status == 400 and "limit" in body["error"]["message"]
    status, body = app.get("secrets/never-rotated/rotations", {"name": "never-rotated"})
    assert status == 200 and body["rotations"] == []


def test_replayed_event_after_success_starts_nothing(
    app: App, twin: KeyVaultTwin, kv: SecretClient, db_secret: SecretFactory,
) -> None:
    secret = db_secret()
    event = near_expiry(twin, secret.name, secret.version)
    for _ in range(3):
        app.deliver(event)
    assert len(versions_of(kv, secret.name)) == 2
    assert len(history(app, secret.name)) == 1


def test_new_version_event_before_near_expiry_changes_nothing(
    app: App, twin: KeyVaultTwin, kv: SecretClient, postgres: PostgresServer,
    db_secret: SecretFactory,
) -> None:
    secret = db_secret()
    created = retarget(load_payload("new_version_doc_sample"), vault=twin.vault_name,
                       secret=secret.name, version=secret.version)
    app.deliver(created)
    assert versions_of(kv, secret.name) == [secret.version]
    app.deliver(near_expiry(twin, secret.name, secret.version))
    app.deliver(created)  # and once more, late
    assert len(versions_of(kv, secret.name)) == 2
    assert len(history(app, secret.name)) == 1
    assert postgres.can_login(secret.role, current_password(kv, secret.name))


def test_old_event_after_a_newer_rotation_does_nothing(
    app: App, twin: KeyVaultTwin, kv: SecretClient, postgres: PostgresServer,
    db_secret: SecretFactory,
) -> None:
    secret = db_secret()
    app.deliver(near_expiry(twin, secret.name, secret.version))
    second_from = kv.get_secret(secret.name).properties.version or ""
    app.deliver(near_expiry(twin, secret.name, second_from))
    before = versions_of(kv, secret.name)
    assert len(before) == 3
    app.deliver(near_expiry(twin, secret.name, secret.version))  # the first event, very late
    assert versions_of(kv, secret.name) == before
    assert len(history(app, secret.name)) == 2
    assert postgres.can_login(secret.role, current_password(kv, secret.name))


def test_http_while_awaiting_retirement_is_409_with_that_rotation(
    app: App, kv: SecretClient, postgres: PostgresServer, db_secret: SecretFactory,
    declare_targets: Callable[..., None],
) -> None:
    admin_secret(postgres, kv, "pg-admin-await")
    declare_targets(pg_await=pg_target(postgres, admin="pg-admin-await"))
    secret = db_secret(tags={"rotator-target": "pg-await", "rotator-strategy": "alternating-users",
                             "rotator-grace-hours": "1"})
    status, first = app.post_rotate(secret.name)
    assert status == 200 and first["status"] == "awaiting-retirement"
    assert postgres.can_login(secret.role, secret.password)  # not retired during its grace
    status, body = app.post_rotate(secret.name)
    assert status == 409
    assert body["error"]["rotationId"] == first["rotationId"]


def admin_secret(postgres: PostgresServer, kv: SecretClient, name: str) -> None:
    role = "r_" + name.replace("-", "_")
    postgres.create_role(role, f"Admin-{role}-Passw0rd", createrole=True)
    kv.set_secret(name, json.dumps({"username": role, "password": f"Admin-{role}-Passw0rd"}),
                  content_type="application/json")


def test_alternating_users_retire_after_grace_through_the_sweeper(
    app: App, twin: KeyVaultTwin, kv: SecretClient, postgres: PostgresServer,
    db_secret: SecretFactory, declare_targets: Callable[..., None],
) -> None:
    admin_secret(postgres, kv, "pg-admin-alt")
    declare_targets(pg_alt=pg_target(postgres, admin="pg-admin-alt",
                                     strategies=["alternating-users"]))
    secret = db_secret(tags={"rotator-target": "pg-alt",
                             "rotator-grace-hours": "0.0003"})  # about one second
    app.deliver(near_expiry(twin, secret.name, secret.version))
    (record,) = history(app, secret.name)
    assert record["status"] == "awaiting-retirement" and record["step"] == "propagated"
    new = json.loads(kv.get_secret(secret.name).value or "{}")
    assert new["username"] == f"{secret.role}_clone"
    assert postgres.can_login(new["username"], new["password"])
    assert postgres.can_login(secret.role, secret.password)  # the previous login still works

    app.sweep()  # too early: nothing to do yet
    assert history(app, secret.name)[0]["status"] == "awaiting-retirement"
    time.sleep(1.3)
    app.sweep()
    (record,) = history(app, secret.name)
    assert record["status"] == "succeeded" and record["step"] == "finished"
    assert not postgres.can_login(secret.role, secret.password)  # retired
    assert postgres.can_login(new["username"], new["password"])
    assert_pending_cleared(kv, secret.name)


def test_sweeper_rotates_what_events_missed_and_leaves_the_rest(
    app: App, kv: SecretClient, postgres: PostgresServer, db_secret: SecretFactory,
) -> None:
    soon = db_secret(expires_in_days=10)
    later = db_secret(expires_in_days=60)
    no_expiry = db_secret()
    kv.update_secret_properties(no_expiry.name, no_expiry.version, expires_on=None)
    kv.set_secret("not-opted-in", "value-of-a-plain-secret", expires_on=datetime.now(UTC))
    app.sweep()
    assert len(versions_of(kv, soon.name)) == 2
    assert len(versions_of(kv, no_expiry.name)) == 2
    assert versions_of(kv, later.name) == [later.version]
    assert len(versions_of(kv, "not-opted-in")) == 1
    for secret in (soon, no_expiry):
        assert postgres.can_login(secret.role, current_password(kv, secret.name))
        assert history(app, secret.name)[0]["trigger"]["source"] == "sweeper"
    for _ in range(3):  # the new versions outlive the window, so no sweep rotates them again
        app.sweep()
    assert len(versions_of(kv, soon.name)) == 2
    assert len(versions_of(kv, no_expiry.name)) == 2


def test_transient_failures_are_bounded_then_failed_and_current_still_works(
    app: App, twin: KeyVaultTwin, kv: SecretClient, postgres: PostgresServer,
    db_secret: SecretFactory,
) -> None:
    secret = db_secret()
    event = near_expiry(twin, secret.name, secret.version)
    twin.inject_fault(status=503, count=1000, method="PUT",
                      path_contains=pending_name(secret.name))
    for _ in range(2):
        with pytest.raises(TransientError):
            app.deliver(event)  # Event Grid would redeliver
    app.deliver(event)  # the third attempt is the last: failed, acknowledged
    (record,) = history(app, secret.name)
    assert record["status"] == "failed" and record["attempts"] == 3
    assert "gave up after 3 attempts" in record["lastError"] or "503" in record["lastError"]
    assert versions_of(kv, secret.name) == [secret.version]
    assert postgres.can_login(secret.role, secret.password)
    twin.clear_faults()
    app.deliver(event)  # a replay of a failed rotation's event starts nothing new
    assert len(history(app, secret.name)) == 1
    status, retried = app.post_rotate(secret.name)  # an operator may retry it explicitly
    assert status == 200 and retried["status"] == "succeeded"
    assert len(history(app, secret.name)) == 2


def test_permanent_failure_after_apply_puts_the_old_password_back(
    app: App, twin: KeyVaultTwin, kv: SecretClient, postgres: PostgresServer,
    db_secret: SecretFactory,
) -> None:
    secret = db_secret()
    # Key Vault refuses the promote (403: the identity lost "set" on this secret).
    twin.inject_fault(status=403, count=1000, method="PUT", path_equals=f"/secrets/{secret.name}")
    app.deliver(near_expiry(twin, secret.name, secret.version))
    (record,) = history(app, secret.name)
    assert record["status"] == "failed" and record["step"] == "verified"
    assert "the previous credential was put back and version" in record["lastError"]
    assert "logs in (verified)" in record["lastError"]
    assert versions_of(kv, secret.name) == [secret.version]
    assert postgres.can_login(secret.role, secret.password)
    twin.clear_faults()
    assert_pending_cleared(kv, secret.name)


def test_a_resumed_rotation_stays_one_trace(
    app: App, twin: KeyVaultTwin, kv: SecretClient, db_secret: SecretFactory,
) -> None:
    from tests.support.telemetry import span_exporter

    secret = db_secret()
    event = near_expiry(twin, secret.name, secret.version)
    twin.inject_fault(status=503, count=3, method="PUT", path_equals=f"/secrets/{secret.name}")
    with pytest.raises(TransientError):
        app.deliver(event)  # attempt 1 fails at promote
    app.deliver(event)  # Event Grid's redelivery: attempt 2 finishes it
    (record,) = history(app, secret.name)
    assert record["status"] == "succeeded" and record["attempts"] == 2
    roots = [s for s in span_exporter().get_finished_spans() if s.name == "rotation/rotate"]
    assert len(roots) == 2
    first, second = sorted(roots, key=lambda s: s.start_time or 0)
    assert first.context.trace_id == second.context.trace_id
    assert second.parent is not None and second.parent.span_id == first.context.span_id
    steps = [s for s in span_exporter().get_finished_spans() if s.name.startswith("rotation/")]
    assert {s.context.trace_id for s in steps} == {first.context.trace_id}


def test_too_many_tags_are_refused_before_anything_changes(
    app: App, twin: KeyVaultTwin, kv: SecretClient, postgres: PostgresServer,
    db_secret: SecretFactory,
) -> None:
    secret = db_secret(tags={f"team-tag-{i}": "x" for i in range(11)})  # 14 tags: 17 needed
    app.deliver(near_expiry(twin, secret.name, secret.version))
    (record,) = history(app, secret.name)
    assert record["status"] == "failed" and record["step"] == "started"
    assert "Key Vault allows 15" in record["lastError"]
    assert "nothing had changed" in record["lastError"]
    assert postgres.can_login(secret.role, secret.password)
    names = [item.name for item in kv.list_properties_of_secrets()]
    assert pending_name(secret.name) not in names  # no pending credential was ever written


class _FailAfterPendingStored:
    """A permanent failure right after the pending credential was written, before journaling."""

    def before(self, step: str, record: object) -> None:
        return None

    def after_effect(self, step: str, record: object) -> None:
        if step == "prepared":
            from rotation.errors import AccessDenied

            raise AccessDenied("injected: the identity lost access mid-step")

    def after_journal(self, step: str, record: object) -> None:
        return None


def test_an_unjournaled_pending_version_is_disabled_when_the_rotation_fails(
    app: App, twin: KeyVaultTwin, kv: SecretClient, postgres: PostgresServer,
    db_secret: SecretFactory,
) -> None:
    from handlers.services import reset_services, set_step_observer

    secret = db_secret()
    set_step_observer(_FailAfterPendingStored())
    reset_services()
    try:
        app.deliver(near_expiry(twin, secret.name, secret.version))
    finally:
        set_step_observer(None)
        reset_services()
    (record,) = history(app, secret.name)
    assert record["status"] == "failed" and record["pendingVersion"] is None
    assert_pending_cleared(kv, secret.name)
    assert postgres.can_login(secret.role, secret.password)


def test_privilege_drift_refuses_the_switch_and_the_history_names_it(
    app: App, twin: KeyVaultTwin, kv: SecretClient, postgres: PostgresServer,
    db_secret: SecretFactory, declare_targets: Callable[..., None],
) -> None:
    admin_secret(postgres, kv, "pg-admin-parity")
    declare_targets(pg_parity=pg_target(postgres, admin="pg-admin-parity",
                                        strategies=["alternating-users"]))
    secret = db_secret(tags={"rotator-target": "pg-parity", "rotator-grace-hours": "0"})
    status, first = app.post_rotate(secret.name)
    assert status == 200 and first["status"] == "succeeded"
    clone = f"{secret.role}_clone"
    with psycopg.connect(postgres.admin_conninfo, autocommit=True) as conn:
        conn.execute(sql.SQL("GRANT pg_read_all_data TO {}").format(sql.Identifier(clone)))
    on_clone = kv.get_secret(secret.name).properties.version or ""
    app.deliver(near_expiry(twin, secret.name, on_clone))
    latest = history(app, secret.name)[0]
    assert latest["status"] == "failed"
    assert (f"privilege parity: '{clone}' is a member of 'pg_read_all_data'; "
            f"'{secret.role}' is not") in latest["lastError"]
    assert "nothing had changed" in latest["lastError"]
    assert kv.get_secret(secret.name).properties.version == on_clone  # nothing switched
    assert postgres.can_login(clone, current_password(kv, secret.name))

    declare_targets(pg_parity=pg_target(postgres, admin="pg-admin-parity",
                                        strategies=["alternating-users"], parity="warn"))
    status, body = app.post_rotate(secret.name)
    assert status == 200 and body["status"] == "succeeded"
