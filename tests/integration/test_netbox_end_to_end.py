"""The ``netbox`` target through the whole protocol: the Functions app, the Key Vault twin and
the real NetBox over verified HTTPS. The new token works before the previous one is
deleted, and NetBox ends every rotation with no token left over."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from azure.keyvault.secrets import SecretClient

from handlers.services import reset_services, set_step_observer
from rotation.attempt import NoObserver
from rotation.journal.model import RotationRecord, Step
from tests.integration.conftest import App, near_expiry, versions_of
from tests.support.netbox import NetBoxServer
from tests.support.targets import token_target
from twins.keyvault import KeyVaultTwin


class CrashAfterMint(NoObserver):
    """Dies once between NetBox's answer and the pending write, as a killed worker would."""

    def __init__(self) -> None:
        self.crashed = False

    def inside(self, step: Step, point: str, record: RotationRecord) -> None:
        if point == "minted" and not self.crashed:
            self.crashed = True
            raise RuntimeError("worker lost after NetBox created the token")


@pytest.fixture
def crash_after_mint() -> Iterator[CrashAfterMint]:
    observer = CrashAfterMint()
    set_step_observer(observer)
    reset_services()
    yield observer
    set_step_observer(None)
    reset_services()


def onboard(kv: SecretClient, netbox: NetBoxServer, **tags: str) -> tuple[int, str, str, str]:
    """A service user and its first token, stored as an operator onboards it."""
    name = f"svc-{uuid.uuid4().hex[:8]}"
    user_id = netbox.create_user(name)
    token_id, token = netbox.create_token(user_id, description="onboarded by hand")
    secret = f"netbox-{name}"
    stored = kv.set_secret(secret, json.dumps({"username": name, "token": token, "tokenId": token_id}),
                           content_type="application/json", tags={"rotator-target": "nb", **tags},
                           expires_on=datetime.now(UTC) + timedelta(days=10))
    return user_id, token, secret, stored.properties.version or ""


def rotations(app: App, secret: str) -> list[dict[str, object]]:
    status, body = app.get("secrets/x/rotations", {"name": secret})
    assert status == 200, body
    return list(body["rotations"])


def test_a_near_expiry_event_creates_a_token_and_deletes_the_old_one_after_its_grace(
    app: App, twin: KeyVaultTwin, kv: SecretClient, netbox: NetBoxServer,
    declare_targets: Callable[..., None],
) -> None:
    declare_targets(nb=token_target("netbox", netbox.url, netbox.ca_path))
    user_id, old, secret, version = onboard(kv, netbox, **{"rotator-grace-hours": "0.0003"})
    app.deliver(near_expiry(twin, secret, version))
    new = json.loads(kv.get_secret(secret).value or "{}")
    (record,) = rotations(app, secret)
    assert record["status"] == "awaiting-retirement"
    assert {t["id"]: t["description"] for t in netbox.tokens(user_id)}[new["tokenId"]] == \
        f"akv-rotator {record['rotationId']}"
    assert netbox.authenticates(old) and netbox.authenticates(new["token"]), "the overlap"
    time.sleep(1.3)
    app.sweep()
    assert rotations(app, secret)[0]["status"] == "succeeded"
    assert not netbox.authenticates(old)
    assert [t["id"] for t in netbox.tokens(user_id)] == [new["tokenId"]]
    assert len(versions_of(kv, secret)) == 2


def test_a_crash_between_create_and_store_leaves_no_token_behind(
    app: App, twin: KeyVaultTwin, kv: SecretClient, netbox: NetBoxServer,
    declare_targets: Callable[..., None], crash_after_mint: CrashAfterMint,
) -> None:
    declare_targets(nb=token_target("netbox", netbox.url, netbox.ca_path))
    user_id, old, secret, version = onboard(kv, netbox, **{"rotator-grace-hours": "0"})
    event = near_expiry(twin, secret, version)
    with pytest.raises(Exception, match="RuntimeError"):
        app.deliver(event)
    assert crash_after_mint.crashed and len(netbox.tokens(user_id)) == 2  # the stray
    app.deliver(event)  # Event Grid redelivers
    (record,) = rotations(app, secret)
    assert record["status"] == "succeeded" and record["leftovers"] is None
    new = json.loads(kv.get_secret(secret).value or "{}")
    assert [t["id"] for t in netbox.tokens(user_id)] == [new["tokenId"]]
    assert netbox.authenticates(new["token"]) and not netbox.authenticates(old)


def test_an_expired_token_is_refused_with_what_to_do_and_nothing_changes(
    app: App, kv: SecretClient, netbox: NetBoxServer, declare_targets: Callable[..., None],
) -> None:
    declare_targets(nb=token_target("netbox", netbox.url, netbox.ca_path))
    user_id, _, secret, version = onboard(kv, netbox)
    (token,) = netbox.tokens(user_id)
    netbox.request("PATCH", f"/api/users/tokens/{token['id']}/", token=netbox.admin_token,
                   json={"expires": (datetime.now(UTC) - timedelta(minutes=1)).isoformat()})
    status, body = app.post_rotate(secret)
    assert status == 409, body
    assert "has expired, so it cannot authenticate the rotation: create a new token" in \
        body["error"]["message"]
    assert versions_of(kv, secret) == [version] and len(netbox.tokens(user_id)) == 1
