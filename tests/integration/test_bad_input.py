"""Bad input gets a clear error, never a 500 or a stuck rotation, and changes nothing.

Each case is one the trust-model issue found: a limit that passes ``str.isdigit`` but not
``int``, a body nested 100,000 deep, a stored password with a lone surrogate, forged
App Service principal headers, and ``ROTATOR_LOG_LEVEL`` reset after the first call; plus an
exception inside compensation, which must still close the rotation.
"""

from __future__ import annotations

import json
import logging
import os

import pytest
from azure.keyvault.secrets import SecretClient

from handlers.services import build_services
from rotation.catalogue import build_target
from rotation.errors import VerificationFailed
from rotation.ids import SecretName, VaultName
from rotation.pending import pending_name
from rotation.secret_value import Credential
from rotation.service import RotationTrigger
from rotation.settings import Settings
from rotation.targets.base import Target, TargetContext
from tests.integration.conftest import App, SecretFactory, versions_of
from tests.support.postgres import PostgresServer
from twins.keyvault import KeyVaultTwin


@pytest.mark.parametrize("limit", ["²", "٣", "1e3", " 5x", "-1", "0", "201", "9" * 5000])
def test_limits_are_parsed_strictly(app: App, limit: str) -> None:
    status, body = app.get("secrets/db-x/rotations", {"name": "db-x"}, {"limit": limit})
    assert status == 400, body
    assert "'limit' must be a whole number from 1 to 200" in body["error"]["message"]


@pytest.mark.parametrize(("body", "message"), [
    (b"[" * 100_000 + b"]" * 100_000, "larger than 1024 bytes"),
    (b'{"reason": ' + b"[" * 400 + b"]" * 400 + b"}", "'reason' must be a string"),
    (b"[" * 500 + b"]" * 500, "must be a JSON object"),
    (json.dumps({"reason": "x" * 201}).encode(), "at most 200 printable"),
    (b'{"reason": "\\ud800 lone surrogate"}', "at most 200 printable"),
    (b'{"reason": "line\\nbreak"}', "at most 200 printable"),
    (b'{"reason": "ok", "force": true}', "unknown fields in the body: force"),
    (b"\xff\xfe not utf-8", "must be a JSON object"),
])
def test_bodies_are_bounded_and_checked_before_anything_happens(
    app: App, kv: SecretClient, db_secret: SecretFactory, body: bytes, message: str,
) -> None:
    secret = db_secret()
    status, answer = app.post_rotate(secret.name, body=body)
    assert status == 400, answer
    assert message in answer["error"]["message"]
    assert versions_of(kv, secret.name) == [secret.version]


def test_a_stored_password_with_a_lone_surrogate_is_refused_before_anything_changes(
    app: App, kv: SecretClient, postgres: PostgresServer, db_secret: SecretFactory,
) -> None:
    secret = db_secret()
    bad = kv.set_secret(secret.name, f'{{"username": "{secret.role}", "password": "\\ud800x"}}',
                        content_type="application/json",
                        tags=dict(kv.get_secret(secret.name).properties.tags or {}))
    status, body = app.post_rotate(secret.name)
    assert status == 409, body
    assert "not valid UTF-8 text" in body["error"]["message"]
    assert sorted(versions_of(kv, secret.name)) == sorted([secret.version,
                                                           bad.properties.version or ""])
    status, history = app.get(f"secrets/{secret.name}/rotations", {"name": secret.name})
    assert history["rotations"] == []
    assert postgres.can_login(secret.role, secret.password)


def test_forged_principal_headers_are_not_trusted_and_oversized_ones_refused(
    app: App, db_secret: SecretFactory, monkeypatch: pytest.MonkeyPatch,
) -> None:
    secret = db_secret()
    status, body = app.post_rotate(secret.name, headers={"x-ms-client-principal-name": "ceo"})
    assert status == 200 and body["trigger"]["reference"] == "function-key"
    monkeypatch.setenv("ROTATOR_TRUST_APP_SERVICE_AUTH", "true")
    from handlers.services import reset_services

    reset_services()
    second = db_secret()
    status, body = app.post_rotate(second.name,
                                   headers={"x-ms-client-principal-name": "a" * 300})
    assert status == 400 and "at most 256 printable" in body["error"]["message"]


def test_the_log_level_setting_is_honoured_on_every_call(
    app: App, db_secret: SecretFactory, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ROTATOR_LOG_LEVEL", "DEBUG")
    secret = db_secret()
    for _ in range(3):
        app.get(f"secrets/{secret.name}/rotations", {"name": secret.name})
        assert logging.getLogger("rotation").getEffectiveLevel() == logging.DEBUG
        assert logging.getLogger("handlers").getEffectiveLevel() == logging.DEBUG


class ExplodingTarget:
    """The real PostgreSQL target, with two faults a library bug could cause: ``verify``
    fails permanently, and ``accepts`` raises a non-rotator error once compensation starts."""

    def __init__(self, real: Target, calls: list[str]) -> None:
        self._real = real
        self.retires_previous = real.retires_previous
        self.calls = calls  # shared: every attempt (and compensation) builds a new target

    def next_username(self, current: Credential) -> str:
        return self._real.next_username(current)

    def accepts(self, credential: Credential) -> bool:
        """The first call (the ownership proof at prepare) works; checking the previous
        credential again, as compensation does, raises."""
        password = credential.password.reveal()
        if password in self.calls:
            raise UnicodeEncodeError("utf-8", "x", 0, 1, "surrogates not allowed")
        if not self.calls:
            self.calls.append(password)
        return self._real.accepts(credential)

    def apply(self, current: Credential, new: Credential) -> None:
        raise ValueError("the driver choked before sending anything")

    def verify(self, credential: Credential) -> None:
        raise VerificationFailed("not reached")

    def parity_differences(self, current: Credential) -> list[str]:
        return self._real.parity_differences(current)

    def retire(self, previous: Credential, current: Credential) -> None:
        self._real.retire(previous, current)


def test_an_exception_inside_compensation_leaves_a_visible_repair_not_a_stuck_rotation(
    app_settings: dict[str, str], twin: KeyVaultTwin, kv: SecretClient,
    postgres: PostgresServer, db_secret: SecretFactory,
) -> None:
    """A library error while settling a given-up rotation must not leave it ``running``
    forever with its pending version enabled (the trust-model issue), nor close it as if the
    current version had been verified (the long-faults issue): it is parked as needs-repair,
    the pending version the target never took is disabled, and the next repair, once the
    fault is gone, proves the current version and closes the rotation."""
    calls: list[str] = []

    def exploding(context: TargetContext) -> Target:
        return ExplodingTarget(build_target(context), calls)

    settings = Settings.from_env({**os.environ, "ROTATOR_MAX_ATTEMPTS": "1"})
    services = build_services(settings, targets=exploding)
    secret = db_secret()
    record = services.rotation.request_rotation(VaultName(twin.vault_name),
                                                SecretName(secret.name),
                                                RotationTrigger("http", "test"))
    assert record.status == "needs-repair" and record.lease_owner is None
    assert "could not prove that the current Key Vault version" in (record.last_error or "")
    assert "UnicodeEncodeError" in (record.last_error or "")
    pending = list(kv.list_properties_of_secret_versions(pending_name(secret.name)))
    assert pending and not any(p.enabled for p in pending)  # the target never took it
    assert versions_of(kv, secret.name) == [secret.version]
    assert postgres.can_login(secret.role, secret.password)

    healthy = build_services(settings)  # the fault is gone; the sweeper repairs
    healthy.sweeper.sweep()
    (repaired,) = healthy.journal.for_secret(twin.vault_name, secret.name)
    assert repaired.status == "failed"
    assert f"version {secret.version} logs in (verified)" in (repaired.last_error or "")
