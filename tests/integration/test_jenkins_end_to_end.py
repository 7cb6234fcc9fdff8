"""The ``jenkins`` target through the whole protocol: the Functions app, the Key Vault twin
and the Jenkins twin over verified HTTPS. The new token works before the previous one is
revoked, and the previous one is revoked only when it is due."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from azure.keyvault.secrets import SecretClient

from tests.integration.conftest import App, near_expiry, versions_of
from tests.support.targets import token_target
from twins.jenkins import JenkinsTwin
from twins.keyvault import KeyVaultTwin

SECRET = "jenkins-svc-ci"


@pytest.fixture
def jenkins(tmp_path: Path) -> Iterator[JenkinsTwin]:
    with JenkinsTwin(cert_dir=tmp_path / "jenkins") as twin:
        twin.add_user("svc-ci")
        yield twin


def store_token(kv: SecretClient, jenkins: JenkinsTwin, **tags: str) -> tuple[str, str, str]:
    """A first token made by hand, stored as an operator onboards it; (value, uuid, version)."""
    value = jenkins.add_token("svc-ci", "onboarded by hand")
    uuid = jenkins.tokens("svc-ci")[0].uuid
    stored = kv.set_secret(SECRET, json.dumps({"username": "svc-ci", "token": value, "tokenUuid": uuid}),
                           content_type="application/json",
                           tags={"rotator-target": "ci", **tags},
                           expires_on=datetime.now(UTC) + timedelta(days=10))
    return value, uuid, stored.properties.version or ""


def current(kv: SecretClient) -> dict[str, str]:
    return dict(json.loads(kv.get_secret(SECRET).value or "{}"))


def rotations(app: App) -> list[dict[str, object]]:
    status, body = app.get("secrets/x/rotations", {"name": SECRET})
    assert status == 200, body
    return list(body["rotations"])


def authenticates(jenkins: JenkinsTwin, token: str) -> bool:
    answer = jenkins.session("svc-ci", token).get(jenkins.url + "whoAmI/api/json", timeout=5)
    return answer.status_code == 200 and answer.json()["name"] == "svc-ci"


def test_a_near_expiry_event_mints_a_token_and_revokes_the_old_one_after_its_grace(
    app: App, twin: KeyVaultTwin, kv: SecretClient, jenkins: JenkinsTwin,
    declare_targets: Callable[..., None],
) -> None:
    declare_targets(ci=token_target("jenkins", jenkins.url, jenkins.ca_path))
    old, old_uuid, version = store_token(kv, jenkins, **{"rotator-grace-hours": "0.0003"})
    app.deliver(near_expiry(twin, SECRET, version))
    new = current(kv)
    assert new["username"] == "svc-ci" and new["tokenUuid"] != old_uuid
    assert len(versions_of(kv, SECRET)) == 2
    names = {t.uuid: t.name for t in jenkins.tokens("svc-ci")}
    (record,) = rotations(app)
    assert names[new["tokenUuid"]] == f"akv-rotator {record['rotationId']}"
    assert record["status"] == "awaiting-retirement" and record["leftovers"] is None
    assert authenticates(jenkins, old) and authenticates(jenkins, new["token"]), "the overlap"

    time.sleep(1.3)
    app.sweep()
    assert rotations(app)[0]["status"] == "succeeded"
    assert not authenticates(jenkins, old), "revoked when due"
    assert authenticates(jenkins, new["token"])
    assert [t.uuid for t in jenkins.tokens("svc-ci")] == [new["tokenUuid"]]


def test_a_lost_create_answer_is_reported_as_a_leftover_and_the_rotation_completes(
    app: App, twin: KeyVaultTwin, kv: SecretClient, jenkins: JenkinsTwin,
    declare_targets: Callable[..., None],
) -> None:
    declare_targets(ci=token_target("jenkins", jenkins.url, jenkins.ca_path))
    old, _, version = store_token(kv, jenkins, **{"rotator-grace-hours": "0"})
    jenkins.inject(status=0, endpoint="generateNewToken", count=1, after_processing=True)
    event = near_expiry(twin, SECRET, version)
    with pytest.raises(Exception, match="generateNewToken"):
        app.deliver(event)  # the token was made, its answer lost: Event Grid redelivers
    assert authenticates(jenkins, old) and versions_of(kv, SECRET) == [version]
    app.deliver(event)
    new = current(kv)
    (record,) = rotations(app)
    assert record["status"] == "succeeded"
    stray = f"akv-rotator {record['rotationId']}"
    assert record["leftovers"] == (f"Jenkins token {stray!r} of user 'svc-ci' (revoke it in the "
                                   "user's Security page)")
    assert sorted(t.name for t in jenkins.tokens("svc-ci")) == [stray, stray]
    assert not authenticates(jenkins, old) and authenticates(jenkins, new["token"])


def test_with_exclusive_tokens_retirement_also_revokes_the_stray(
    app: App, twin: KeyVaultTwin, kv: SecretClient, jenkins: JenkinsTwin,
    declare_targets: Callable[..., None],
) -> None:
    declare_targets(ci=token_target("jenkins", jenkins.url, jenkins.ca_path, exclusive=True))
    _, _, version = store_token(kv, jenkins, **{"rotator-grace-hours": "0"})
    jenkins.inject(status=0, endpoint="generateNewToken", count=1, after_processing=True)
    event = near_expiry(twin, SECRET, version)
    with pytest.raises(Exception, match="generateNewToken"):
        app.deliver(event)
    app.deliver(event)
    (record,) = rotations(app)
    assert record["status"] == "succeeded" and record["leftovers"] is None
    assert [t.uuid for t in jenkins.tokens("svc-ci")] == [current(kv)["tokenUuid"]]


def test_a_value_without_its_token_uuid_is_refused_before_anything_changes(
    app: App, kv: SecretClient, jenkins: JenkinsTwin, declare_targets: Callable[..., None],
) -> None:
    declare_targets(ci=token_target("jenkins", jenkins.url, jenkins.ca_path))
    value = jenkins.add_token("svc-ci", "no uuid kept")
    stored = kv.set_secret(SECRET, json.dumps({"username": "svc-ci", "token": value}),
                           content_type="application/json", tags={"rotator-target": "ci"})
    status, body = app.post_rotate(SECRET)
    assert status == 409, body
    assert "needs 'tokenUuid'" in body["error"]["message"]
    assert versions_of(kv, SECRET) == [stored.properties.version]
    assert len(jenkins.tokens("svc-ci")) == 1
