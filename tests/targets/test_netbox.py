"""The ``netbox`` target against the real NetBox 4.7 over verified HTTPS: a new token with the
same rights, the overlap, deletion proven by NetBox refusing the old token, strays found by
their description, and every refusal named."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from rotation.errors import AccessDenied, SecretNotRotatable, VerificationFailed
from rotation.secret_value import Credential, SecretValue
from rotation.targets.netbox import NetBoxTokenTarget
from tests.support.netbox import NetBoxServer
from tests.support.targets import context_of, token_target

EXPIRES = datetime.now(UTC) + timedelta(days=45)


def target(netbox: NetBoxServer) -> NetBoxTokenTarget:
    return NetBoxTokenTarget(context_of(token_target("netbox", netbox.url, netbox.ca_path), "overlap"))


def service_user(netbox: NetBoxServer, **token: Any) -> tuple[int, Credential]:
    """A fresh user and its first token, as the value an operator onboards."""
    name = f"svc-{uuid.uuid4().hex[:8]}"
    user_id = netbox.create_user(name)
    token_id, plain = netbox.create_token(user_id, description="onboarded by hand", **token)
    return user_id, Credential(name, SecretValue(plain), secret_field="token", ref_field="tokenId",
                               ref=str(token_id))


def by_id(netbox: NetBoxServer, user_id: int) -> dict[int, dict[str, Any]]:
    return {int(t["id"]): t for t in netbox.tokens(user_id)}


def test_a_new_token_overlaps_the_current_one_until_retired(netbox: NetBoxServer) -> None:
    tokens = target(netbox)
    user_id, current = service_user(netbox)
    assert tokens.accepts(current)
    new = tokens.mint(current, "akv-rotator r-1", EXPIRES)
    assert new.password.reveal().startswith("nbt_") and new.ref_field == "tokenId"
    assert by_id(netbox, user_id)[int(new.ref or 0)]["description"] == "akv-rotator r-1"
    tokens.apply(current, new)
    tokens.verify(new)
    assert netbox.authenticates(current.password.reveal()), "both work during the overlap"
    tokens.retire(current, new)
    assert not netbox.authenticates(current.password.reveal())
    assert netbox.authenticates(new.password.reveal())
    assert list(by_id(netbox, user_id)) == [int(new.ref or 0)]
    tokens.retire(current, new)  # repeated: the previous token is already gone


def test_the_new_token_copies_the_rights_of_the_current_one(netbox: NetBoxServer) -> None:
    tokens = target(netbox)
    user_id, current = service_user(netbox, allowed_ips=["127.0.0.0/8"],
                                     expires=datetime.now(UTC) + timedelta(days=3))
    new = tokens.mint(current, "akv-rotator r-2", EXPIRES)
    old_record, new_record = (by_id(netbox, user_id)[int(c.ref or 0)] for c in (current, new))
    assert new_record["allowed_ips"] == old_record["allowed_ips"] == ["127.0.0.0/8"]
    assert new_record["write_enabled"] is True and new_record["version"] == 2
    # An expiring token gets an expiring successor, with the new Key Vault version's expiry.
    assert abs(datetime.fromisoformat(new_record["expires"]) - EXPIRES) < timedelta(seconds=1)


def test_a_token_without_an_expiry_gets_none(netbox: NetBoxServer) -> None:
    user_id, current = service_user(netbox)
    new = target(netbox).mint(current, "akv-rotator r-3", EXPIRES)
    assert by_id(netbox, user_id)[int(new.ref or 0)]["expires"] is None


def test_a_v1_token_rotates_to_a_v1_token(netbox: NetBoxServer) -> None:
    tokens = target(netbox)
    user_id, current = service_user(netbox, version=1)
    assert len(current.password) == 40
    new = tokens.mint(current, "akv-rotator r-4", EXPIRES)
    assert len(new.password) == 40 and not new.password.reveal().startswith("nbt_")
    tokens.retire(current, new)
    assert not netbox.authenticates(current.password.reveal())
    assert list(by_id(netbox, user_id)) == [int(new.ref or 0)]


def test_a_v2_token_without_its_id_is_found_by_its_key(netbox: NetBoxServer) -> None:
    tokens = target(netbox)
    user_id, current = service_user(netbox)
    bare = Credential(current.username, current.password, secret_field="token")
    new = tokens.mint(bare, "akv-rotator r-5", EXPIRES)
    tokens.retire(bare, new)
    assert list(by_id(netbox, user_id)) == [int(new.ref or 0)]


def test_strays_named_after_the_rotation_are_deleted_before_minting_again(netbox: NetBoxServer) -> None:
    tokens = target(netbox)
    user_id, current = service_user(netbox)
    stray = tokens.mint(current, "akv-rotator r-6", EXPIRES)  # minted, never stored
    other = tokens.mint(current, "someone else's automation", EXPIRES)
    assert tokens.sweep_strays(current, "akv-rotator r-6") == []
    left = by_id(netbox, user_id)
    assert int(stray.ref or 0) not in left
    assert {int(current.ref or 0), int(other.ref or 0)} <= set(left)


def test_a_token_of_another_user_is_refused_before_anything_changes(netbox: NetBoxServer) -> None:
    tokens = target(netbox)
    _, theirs = service_user(netbox)
    mine_id, mine = service_user(netbox)
    claimed = Credential(mine.username, theirs.password, secret_field="token")
    with pytest.raises(SecretNotRotatable, match=f"authenticates as NetBox user '{theirs.username}', "
                                                 f"not as '{mine.username}'"):
        tokens.mint(claimed, "akv-rotator r-7", EXPIRES)
    assert list(by_id(netbox, mine_id)) == [int(mine.ref or 0)]


def test_a_token_id_that_names_another_token_is_refused(netbox: NetBoxServer) -> None:
    tokens = target(netbox)
    user_id, current = service_user(netbox)
    other_id, _ = netbox.create_token(user_id, description="a CI job's token")
    lying = Credential(current.username, current.password, secret_field="token",
                       ref_field="tokenId", ref=str(other_id))
    new = tokens.mint(current, "akv-rotator r-8", EXPIRES)
    with pytest.raises(SecretNotRotatable, match=f"tokenId {other_id} does not name this token"):
        tokens.retire(lying, new)
    assert other_id in by_id(netbox, user_id), "the other token was not deleted"


def test_an_expired_token_is_a_permanent_error_saying_what_to_do(netbox: NetBoxServer) -> None:
    _, current = service_user(netbox)
    netbox.request("PATCH", f"/api/users/tokens/{current.ref}/", token=netbox.admin_token,
                   json={"expires": (datetime.now(UTC) - timedelta(minutes=1)).isoformat()})
    with pytest.raises(SecretNotRotatable, match=r"has expired, so it cannot authenticate the "
                                                 r"rotation: create a new token"):
        target(netbox).accepts(current)


def test_a_read_only_token_cannot_create_its_successor(netbox: NetBoxServer) -> None:
    user_id, current = service_user(netbox, write_enabled=False)
    with pytest.raises(AccessDenied, match="needs write_enabled"):
        target(netbox).mint(current, "akv-rotator r-9", EXPIRES)
    assert list(by_id(netbox, user_id)) == [int(current.ref or 0)]


def test_a_wrong_token_does_not_log_in(netbox: NetBoxServer) -> None:
    _, current = service_user(netbox)
    key = current.password.reveal().split(".")[0]
    wrong = Credential(current.username, SecretValue(key + "." + "x" * 40), secret_field="token")
    assert not target(netbox).accepts(wrong)
    with pytest.raises(VerificationFailed):
        target(netbox).verify(wrong)
