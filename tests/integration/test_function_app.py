"""End to end through function_app's registered functions, on the twin and real PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from azure.keyvault.secrets import SecretClient

from tests.integration.conftest import App, SecretFactory, near_expiry, versions_of
from tests.support.leaks import CapturingHandler
from tests.support.payloads import load_payload, retarget
from tests.support.postgres import PostgresServer
from tests.support.targets import pg_target
from tests.support.telemetry import span_exporter
from twins.keyvault import KeyVaultTwin


def assert_rotated(kv: SecretClient, postgres: PostgresServer, name: str, role: str,
                   old_password: str, old_version: str, target: str = "test-pg") -> dict:
    current = kv.get_secret(name)
    assert current.properties.version != old_version
    value = json.loads(current.value or "")
    assert value["username"] == role
    assert value["password"] != old_password
    assert postgres.can_login(role, value["password"])
    assert not postgres.can_login(role, old_password)
    assert current.properties.content_type == "application/json"
    expires = current.properties.expires_on
    assert expires is not None
    assert abs(expires - (datetime.now(UTC) + timedelta(days=45))) < timedelta(minutes=2)
    tags = current.properties.tags or {}
    assert tags["owner"] == "platform-team" and tags["rotator-target"] == target
    assert tags["rotator-written-by"] == "akv-rotator" and tags["rotator-rotation-id"]
    assert datetime.fromisoformat(tags["rotator-rotated-at"]) <= datetime.now(UTC)
    return dict(tags)


@pytest.mark.parametrize(
    "shape", ["near_expiry_pascal", "near_expiry_camel_2020", "expired_pascal_spaces_2021"])
def test_near_expiry_event_rotates_the_password_end_to_end(
    app: App, twin: KeyVaultTwin, kv: SecretClient, postgres: PostgresServer,
    db_secret: SecretFactory, shape: str,
) -> None:
    secret = db_secret()
    app.deliver(near_expiry(twin, secret.name, secret.version, shape))
    assert_rotated(kv, postgres, secret.name, secret.role, secret.password, secret.version)
    assert len(versions_of(kv, secret.name)) == 2


def test_twin_emitted_event_rotates_and_own_new_version_event_is_ignored(
    app: App, twin: KeyVaultTwin, kv: SecretClient, postgres: PostgresServer,
    db_secret: SecretFactory, captured: CapturingHandler,
) -> None:
    delivered: list[dict] = []
    secret = db_secret()
    twin.wait_for_deliveries()
    twin.subscribe(delivered.append)
    app.deliver(twin.emit(secret.name, "Microsoft.KeyVault.SecretNearExpiry"))
    twin.wait_for_deliveries()
    own_writes = [e for e in delivered if e["eventType"].endswith("SecretNewVersionCreated")]
    # One for the pending credential (prepare), one for the new current version (promote).
    assert sorted(e["subject"] for e in own_writes) == sorted(
        [secret.name, f"{secret.name}-rotator-pending"])
    for event in sorted(own_writes, key=lambda e: e["subject"] == secret.name):
        app.deliver(event)
    assert len(versions_of(kv, secret.name)) == 2
    handled = [r for r in captured.records() if r.get("event") == "event handled"]
    # The pending version is disabled once the rotation finished; the new current one is
    # recognised by its tags.
    assert [r["reason"] for r in handled[-2:]] == ["the new version is gone or disabled",
                                                   "akv-rotator wrote this version itself"]
    assert handled[-1]["outcome"] == "ignored"


def test_new_version_written_by_someone_else_starts_nothing(
    app: App, twin: KeyVaultTwin, kv: SecretClient, db_secret: SecretFactory,
    captured: CapturingHandler,
) -> None:
    secret = db_secret()
    payload = retarget(load_payload("new_version_doc_sample"), vault=twin.vault_name,
                       secret=secret.name, version=secret.version)
    app.deliver(payload)
    assert versions_of(kv, secret.name) == [secret.version]
    handled = [r for r in captured.records() if r.get("event") == "event handled"]
    assert "outside akv-rotator" in handled[-1]["reason"]


def test_stale_near_expiry_event_does_nothing(
    app: App, twin: KeyVaultTwin, kv: SecretClient, postgres: PostgresServer,
    db_secret: SecretFactory, captured: CapturingHandler,
) -> None:
    secret = db_secret()
    newer = kv.set_secret(secret.name, json.dumps({"username": secret.role,
                                                   "password": secret.password}),
                          content_type="application/json",
                          tags=kv.get_secret(secret.name).properties.tags)
    app.deliver(near_expiry(twin, secret.name, secret.version))
    assert kv.get_secret(secret.name).properties.version == newer.properties.version
    assert postgres.can_login(secret.role, secret.password)
    handled = [r for r in captured.records() if r.get("event") == "event handled"]
    assert handled[-1]["reason"].startswith("stale event")


def test_event_from_a_vault_outside_the_allowlist_is_refused_and_acknowledged(
    app: App, twin: KeyVaultTwin, kv: SecretClient, postgres: PostgresServer,
    db_secret: SecretFactory, captured: CapturingHandler,
) -> None:
    secret = db_secret()
    foreign = retarget(load_payload("near_expiry_pascal"), vault="kv-elsewhere",
                       secret=secret.name, version=secret.version)
    before = len(twin.requests)
    app.deliver(foreign)  # returns: Event Grid must not retry it
    assert len(twin.requests) == before  # the vault was never asked
    assert versions_of(kv, secret.name) == [secret.version]
    assert postgres.can_login(secret.role, secret.password)
    refused = [r for r in captured.records() if r.get("outcome") == "refused"]
    assert refused and refused[0]["level"] == "warning"
    assert "allowlist" in refused[0]["reason"]


def test_secret_not_opted_in_is_left_alone(
    app: App, twin: KeyVaultTwin, kv: SecretClient, captured: CapturingHandler,
) -> None:
    plain = kv.set_secret("plain-secret", "not-a-database-password-123")
    app.deliver(near_expiry(twin, "plain-secret", plain.properties.version or ""))
    assert versions_of(kv, "plain-secret") == [plain.properties.version]
    handled = [r for r in captured.records() if r.get("event") == "event handled"]
    assert handled[-1]["reason"] == "the secret is not opted in to rotation"


def test_unknown_event_type_is_acknowledged(app: App, twin: KeyVaultTwin,
                                            captured: CapturingHandler) -> None:
    before = len(twin.requests)
    app.deliver(load_payload("key_near_expiry"))
    assert [r for r in captured.records() if r.get("event") == "event ignored"]
    assert len(twin.requests) == before


def test_malformed_tags_are_logged_once_and_not_retried_and_open_nothing(
    app: App, twin: KeyVaultTwin, kv: SecretClient, postgres: PostgresServer,
    db_secret: SecretFactory, captured: CapturingHandler,
) -> None:
    secret = db_secret(tags={"rotator-validity-days": "forever"})
    app.deliver(near_expiry(twin, secret.name, secret.version))  # no exception: acknowledged
    handled = [r for r in captured.records() if r.get("event") == "event handled"]
    assert len(handled) == 1 and handled[0]["outcome"] == "not-rotatable"
    assert "not a whole number" in handled[0]["reason"]
    assert sum("not a whole number" in line for line in captured.lines) == 1  # logged once
    status, body = app.get(f"secrets/{secret.name}/rotations", {"name": secret.name})
    assert status == 200 and body["rotations"] == []  # refused before the journal opened one
    assert versions_of(kv, secret.name) == [secret.version]
    assert postgres.can_login(secret.role, secret.password)


def test_transient_failure_raises_so_event_grid_retries(
    app: App, twin: KeyVaultTwin, kv: SecretClient, postgres: PostgresServer,
    db_secret: SecretFactory,
) -> None:
    from rotation.errors import TransientError

    secret = db_secret()
    twin.inject_fault(status=503, count=10, method="GET")
    with pytest.raises(TransientError):
        app.deliver(near_expiry(twin, secret.name, secret.version))
    twin.clear_faults()
    assert postgres.can_login(secret.role, secret.password)
    app.deliver(near_expiry(twin, secret.name, secret.version))  # the redelivery succeeds
    assert_rotated(kv, postgres, secret.name, secret.role, secret.password, secret.version)


def test_throttling_is_retried_with_backoff_within_one_delivery(
    app: App, twin: KeyVaultTwin, kv: SecretClient, postgres: PostgresServer,
    db_secret: SecretFactory, captured: CapturingHandler,
) -> None:
    secret = db_secret()
    twin.inject_fault(status=429, count=1, method="PUT", retry_after=0.05)
    twin.inject_fault(status=429, count=1, method="PUT")
    app.deliver(near_expiry(twin, secret.name, secret.version))
    assert_rotated(kv, postgres, secret.name, secret.role, secret.password, secret.version)
    retries = [r for r in captured.records() if r.get("event") == "transient failure, retrying"]
    assert len(retries) == 2


def test_wrong_stored_password_is_access_denied_and_never_retried(
    app: App, twin: KeyVaultTwin, kv: SecretClient, postgres: PostgresServer,
    db_secret: SecretFactory, captured: CapturingHandler,
) -> None:
    secret = db_secret()
    postgres.create_role(secret.role, "Changed-Outside-0f-Rotator")
    app.deliver(near_expiry(twin, secret.name, secret.version))
    failed = [r for r in captured.records() if r.get("event") == "rotation failed"]
    assert failed[0]["error"] == "AccessDenied"
    assert "current credential does not log in" in failed[0]["detail"]  # ownership not proven
    assert not [r for r in captured.records() if r.get("event") == "transient failure, retrying"]
    assert versions_of(kv, secret.name) == [secret.version]
    assert postgres.can_login(secret.role, "Changed-Outside-0f-Rotator")


def test_admin_secret_rotates_a_login_through_the_operators_target(
    app: App, twin: KeyVaultTwin, kv: SecretClient, postgres: PostgresServer,
    db_secret: SecretFactory, declare_targets: Callable[..., None],
) -> None:
    postgres.create_role("rotator_admin_e2e", "Admin-Passw0rd-e2e", createrole=True)
    kv.set_secret("pg-admin", json.dumps({"username": "rotator_admin_e2e",
                                          "password": "Admin-Passw0rd-e2e"}),
                  content_type="application/json")
    declare_targets(pg_admin=pg_target(postgres, admin="pg-admin"))
    secret = db_secret(tags={"rotator-target": "pg-admin"})
    app.deliver(near_expiry(twin, secret.name, secret.version))
    assert_rotated(kv, postgres, secret.name, secret.role, secret.password, secret.version,
                   target="pg-admin")


def test_one_trace_per_rotation_with_a_span_per_step(
    app: App, twin: KeyVaultTwin, db_secret: SecretFactory, captured: CapturingHandler,
) -> None:
    secret = db_secret()
    app.deliver(near_expiry(twin, secret.name, secret.version))
    spans = span_exporter().get_finished_spans()
    names = [s.name for s in spans]
    for step in ("rotation/rotate", "rotation/read", "rotation/prepare", "rotation/apply",
                 "rotation/verify", "rotation/promote", "rotation/propagate", "rotation/retire",
                 "rotation/finish"):
        assert names.count(step) == 1, names
    root = next(s for s in spans if s.name == "rotation/rotate")
    assert {s.context.trace_id for s in spans if s.name.startswith("rotation/")} == {
        root.context.trace_id}
    assert root.attributes is not None and root.attributes["rotator.secret"] == secret.name
    steps = [r for r in captured.records() if r.get("event") == "step finished"]
    assert [r["step"] for r in steps] == ["read", "prepare", "apply", "verify", "promote",
                                          "propagate", "retire", "finish", "rotate"]
    rotation_ids = {r["rotation_id"] for r in steps}
    assert len(rotation_ids) == 1
    assert all(r["secret"] == secret.name and r["vault"] == twin.vault_name for r in steps)


# --- HTTP ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("trust_auth", "caller"), [
    ("true", "alice@example.com"),  # App Service authentication is on: it strips forgeries
    ("", "function-key"),           # it is not: the header is anyone's to write
])
def test_http_rotation_answers_versions_and_expiry(
    app: App, kv: SecretClient, postgres: PostgresServer, db_secret: SecretFactory,
    monkeypatch: pytest.MonkeyPatch, trust_auth: str, caller: str,
) -> None:
    monkeypatch.setenv("ROTATOR_TRUST_APP_SERVICE_AUTH", trust_auth)
    secret = db_secret()
    status, body = app.post_rotate(secret.name, body=b'{"reason": "suspected leak"}',
                                   headers={"x-ms-client-principal-name": "alice@example.com"})
    assert status == 200, body
    tags = assert_rotated(kv, postgres, secret.name, secret.role, secret.password, secret.version)
    assert body["oldVersion"] == secret.version
    assert body["newVersion"] == kv.get_secret(secret.name).properties.version
    assert body["rotationId"] == tags["rotator-rotation-id"]
    assert body["secret"] == secret.name and body["durationSeconds"] >= 0
    assert datetime.fromisoformat(body["newExpiry"]) > datetime.now(UTC) + timedelta(days=29)
    assert body["trigger"] == {"source": "http", "reference": f"{caller}: suspected leak",
                               "eventType": None}
    assert body["target"] == "test-pg" and body["ownership"] == "proven"
    assert body["status"] == "succeeded" and body["step"] == "finished"
    assert "password" not in json.dumps(body)


def test_http_unknown_secret_is_404(app: App) -> None:
    status, body = app.post_rotate("does-not-exist")
    assert status == 404
    assert body["error"]["code"] == "SecretNotFound"
    assert "does-not-exist" in body["error"]["message"]


@pytest.mark.parametrize(
    ("name", "body", "params", "expected"),
    [
        ("bad_name!", b"", {}, "not a Key Vault secret name"),
        ("ok-name", b"{not json", {}, "must be a JSON object"),
        ("ok-name", b'["x"]', {}, "must be a JSON object"),
        ("ok-name", b'{"force": true}', {}, "unknown fields in the body: force"),
        ("ok-name", b'{"reason": 5}', {}, "'reason' must be a string"),
        ("ok-name", b"", {"vault": "kv-other"}, "vault 'kv-other' is not configured"),
    ],
)
def test_http_bad_input_is_400_and_changes_nothing(
    app: App, twin: KeyVaultTwin, name: str, body: bytes, params: dict, expected: str,
) -> None:
    before = len(twin.requests)
    status, answer = app.post_rotate(name, body=body, params=params)
    assert status == 400
    assert expected in answer["error"]["message"]
    assert not [r for r in twin.requests[before:] if r.method in ("PUT", "PATCH", "DELETE")]


def test_http_secret_that_is_not_rotatable_is_409(app: App, kv: SecretClient) -> None:
    kv.set_secret("plain-http", "not-a-database-password-456")
    status, body = app.post_rotate("plain-http")
    assert status == 409
    assert body["error"]["code"] == "SecretNotRotatable"
    assert "rotator-target is missing" in body["error"]["message"]


def test_http_disabled_secret_is_409(app: App, kv: SecretClient,
                                     db_secret: SecretFactory) -> None:
    secret = db_secret()
    kv.update_secret_properties(secret.name, secret.version, enabled=False)
    status, body = app.post_rotate(secret.name)
    assert status == 409
    assert "disabled" in body["error"]["message"]


def test_http_rotation_already_running_is_409_with_its_id(
    app: App, kv: SecretClient, db_secret: SecretFactory,
) -> None:
    from handlers.services import get_services
    from rotation.ids import RotationId, SecretName, VaultName, VersionId
    from rotation.journal.model import RotationRecord

    secret = db_secret()
    now = datetime.now(UTC)
    services = get_services()
    opened = services.journal.begin(RotationRecord(
        rotation_id=RotationId("a" * 32), vault=VaultName(services.settings.vaults[0].name),
        secret=SecretName(secret.name), from_version=VersionId(secret.version),
        trigger_source="event", trigger_reference="another-worker", trigger_event_type=None,
        created_at=now, updated_at=now), now=now)
    services.journal.claim(opened.record.rotation_id, owner="another-worker", now=now,
                           ttl=timedelta(minutes=5))
    status, body = app.post_rotate(secret.name)
    assert status == 409
    assert body["error"]["rotationId"] == "a" * 32
    assert versions_of(kv, secret.name) == [secret.version]


def test_http_transient_failure_is_503_with_retry_after(
    app: App, twin: KeyVaultTwin, db_secret: SecretFactory,
) -> None:
    secret = db_secret()
    twin.inject_fault(status=429, count=10, retry_after=7)
    status, body = app.post_rotate(secret.name)
    assert status == 503
    assert body["error"]["code"] == "Throttled"  # a TransientError: the vault's load, not ours
    assert app.last_headers["Retry-After"] == "7"
    twin.clear_faults()
    other = db_secret()
    twin.inject_fault(status=503, count=10, retry_after=5)
    status, body = app.post_rotate(other.name)
    assert (status, body["error"]["code"], app.last_headers["Retry-After"]) == (503, "TransientError", "5")


def test_missing_settings_are_a_clear_500(app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    from handlers.services import reset_services

    monkeypatch.delenv("ROTATOR_VAULTS")
    monkeypatch.setenv("ROTATOR_VALIDITY_DAYS", "zero")
    reset_services()
    status, body = app.post_rotate("any-secret")
    assert status == 500
    assert "ROTATOR_VAULTS is required" in body["error"]["message"]
    assert "ROTATOR_VALIDITY_DAYS must be a whole number" in body["error"]["message"]
