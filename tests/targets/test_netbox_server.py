"""What the real NetBox 4.7.3 does with API tokens: the behaviour the netbox target relies on.

These tests characterise the server, not the rotator: each pins a status code and a ``detail``
message observed on NetBox 4.7.3, so a NetBox upgrade that changes one fails here first, with
the difference in plain sight. They run against the session's ``netbox`` fixture over HTTPS.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
import requests

from tests.support.netbox import NETBOX_VERSION, NetBoxServer, auth_header, token_plaintext

_names = itertools.count(1)


@dataclass(frozen=True)
class Account:
    """An ordinary (non-superuser) NetBox user with one v2 token made by the admin."""

    user_id: int
    username: str
    password: str = field(repr=False)
    token_id: int
    token: str = field(repr=False)  # "nbt_<key>.<secret>"


@pytest.fixture
def account(netbox: NetBoxServer) -> Account:
    username = f"svc-{next(_names)}"  # one NetBox per session, so unique
    password = "Svc-Passw0rd-123456"
    user_id = netbox.create_user(username, password)
    token_id, token = netbox.create_token(user_id, description="initial")
    return Account(user_id, username, password, token_id, token)


def detail(response: requests.Response) -> object:
    return response.json().get("detail")


# --- authentication --------------------------------------------------------------------------


def test_status_needs_a_token_and_reports_the_pinned_version(netbox: NetBoxServer) -> None:
    anonymous = netbox.request("GET", "/api/status/")
    assert anonymous.status_code == 403
    assert detail(anonymous) == "Authentication credentials were not provided."
    status = netbox.request("GET", "/api/status/", token=netbox.admin_token)
    assert status.status_code == 200
    assert status.json()["netbox-version"] == NETBOX_VERSION


def test_admin_v2_token_authenticates_as_bearer(netbox: NetBoxServer) -> None:
    assert netbox.admin_token.startswith("nbt_")
    check = netbox.request("GET", "/api/authentication-check/", token=netbox.admin_token)
    assert check.status_code == 200
    assert check.json()["username"] == "admin"
    assert check.json()["id"] == netbox.admin_id


def test_scheme_word_is_ignored_the_nbt_prefix_decides_the_version(netbox: NetBoxServer) -> None:
    """``Token nbt_...`` works too: NetBox reads the version from the value, not the keyword."""
    def check(authorization: str) -> tuple[int, object]:
        response = netbox.request("GET", "/api/authentication-check/", authorization=authorization)
        return response.status_code, detail(response)

    assert check(f"Token {netbox.admin_token}") == (200, None)
    assert check("Bearer " + "0" * 40) == (403, "Invalid v1 token")
    assert check("Bearer nbt_no-dot-here") == (
        403, "Invalid authorization header: Could not parse key from v2 token. "
             "Did you mean to use 'Token' instead of 'Bearer'?")
    assert check(f"Bearer {netbox.admin_token} extra") == (
        403, 'Invalid authorization header: Must be in the form "Bearer <key>.<token>" or '
             '"Token <token>"')


def test_unknown_v2_token_is_refused_with_invalid_v2_token(netbox: NetBoxServer) -> None:
    key = netbox.admin_token.split(".")[0]
    forged = f"{key}.{'x' * 40}"  # right key, wrong secret: the same answer, no key enumeration
    response = netbox.request("GET", "/api/authentication-check/", token=forged)
    assert (response.status_code, detail(response)) == (403, "Invalid v2 token")
    assert not netbox.authenticates("nbt_AAAAAAAAAAAA." + "y" * 40)


# --- self-service rotation with a v2 token ----------------------------------------------------


def test_user_rotates_its_own_v2_token(netbox: NetBoxServer, account: Account) -> None:
    # "user" is required even when a user makes a token for itself.
    missing_user = netbox.request("POST", "/api/users/tokens/", token=account.token,
                                  json={"description": "rotated"})
    assert (missing_user.status_code, missing_user.json()) == (400, {"user": ["This field is required."]})
    created = netbox.request("POST", "/api/users/tokens/", token=account.token,
                             json={"user": account.user_id, "description": "rotated"})
    assert created.status_code == 201
    body = created.json()
    assert body["version"] == 2
    assert re.fullmatch(r"[A-Za-z0-9]{12}", body["key"])
    assert re.fullmatch(r"[A-Za-z0-9]{40}", body["token"])
    assert body["user"]["id"] == account.user_id
    new = token_plaintext(body)
    assert netbox.authenticates(account.token)
    assert netbox.authenticates(new)

    deleted = netbox.request("DELETE", f"/api/users/tokens/{account.token_id}/", token=new)
    assert deleted.status_code == 204
    old = netbox.request("GET", "/api/authentication-check/", token=account.token)
    assert (old.status_code, old.json()) == (403, {"detail": "Invalid v2 token"})
    assert netbox.authenticates(new)
    # Deleting it again is a 404, which a retried rotation step can treat as done.
    again = netbox.request("DELETE", f"/api/users/tokens/{account.token_id}/", token=new)
    assert (again.status_code, detail(again)) == (404, "No Token matches the given query.")


def test_client_supplied_plaintext_is_ignored(netbox: NetBoxServer, account: Account) -> None:
    """Since 4.7.0 ``token`` is read-only: the server always picks the secret."""
    chosen = "0123456789abcdefghij0123456789ABCDEFGHIJ"
    for version in (1, 2):
        created = netbox.request("POST", "/api/users/tokens/", token=netbox.admin_token,
                                 json={"user": account.user_id, "version": version, "token": chosen})
        assert created.status_code == 201
        assert created.json()["token"] != chosen
        assert netbox.authenticates(token_plaintext(created.json()))
    assert not netbox.authenticates(chosen)


def test_listing_shows_descriptions_keys_and_never_plaintext(
    netbox: NetBoxServer, account: Account,
) -> None:
    second_id, _ = netbox.create_token(account.user_id, description="second")
    listed = {token["id"]: token for token in netbox.tokens(account.user_id)}
    assert set(listed) == {account.token_id, second_id}
    assert listed[second_id]["description"] == "second"
    assert listed[account.token_id]["description"] == "initial"
    assert all(token["token"] is None for token in listed.values())
    assert listed[second_id]["key"] == netbox_key(netbox, second_id)
    # The user itself sees the same list with its own token.
    own = netbox.request("GET", "/api/users/tokens/", token=account.token,
                         params={"user_id": account.user_id})
    assert own.status_code == 200
    assert {token["id"] for token in own.json()["results"]} == set(listed)


def netbox_key(netbox: NetBoxServer, token_id: int) -> str:
    response = netbox.request("GET", f"/api/users/tokens/{token_id}/", token=netbox.admin_token)
    assert response.status_code == 200
    return str(response.json()["key"])


def test_ordinary_user_sees_and_makes_only_its_own_tokens(
    netbox: NetBoxServer, account: Account,
) -> None:
    others = netbox.request("GET", "/api/users/tokens/", token=account.token,
                            params={"user_id": netbox.admin_id})
    assert (others.status_code, others.json()["count"]) == (200, 0)
    for_admin = netbox.request("POST", "/api/users/tokens/", token=account.token,
                               json={"user": netbox.admin_id})
    assert for_admin.status_code == 403
    assert detail(for_admin) == "This user does not have permission to create tokens for other users."


# --- expiry, disabling, write access, source IPs ---------------------------------------------


def test_token_cannot_be_created_already_expired(netbox: NetBoxServer, account: Account) -> None:
    past = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    response = netbox.request("POST", "/api/users/tokens/", token=netbox.admin_token,
                              json={"user": account.user_id, "expires": past})
    assert response.status_code == 400
    (message,) = response.json()["expires"]
    assert message.startswith("Expiration time must be in the future. Current server time is ")
    assert message.endswith(" (UTC).")


def test_expired_token_is_refused_with_token_expired(netbox: NetBoxServer, account: Account) -> None:
    token_id, token = netbox.create_token(account.user_id,
                                          expires=datetime.now(UTC) + timedelta(days=1))
    assert netbox.authenticates(token)
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    patched = netbox.request("PATCH", f"/api/users/tokens/{token_id}/", token=netbox.admin_token,
                             json={"expires": past})
    assert patched.status_code == 200  # the future-only rule applies to creation alone
    response = netbox.request("GET", "/api/authentication-check/", token=token)
    assert (response.status_code, detail(response)) == (403, "Token expired")


def test_disabled_token_is_refused_with_token_disabled(netbox: NetBoxServer, account: Account) -> None:
    patched = netbox.request("PATCH", f"/api/users/tokens/{account.token_id}/",
                             token=netbox.admin_token, json={"enabled": False})
    assert patched.status_code == 200
    response = netbox.request("GET", "/api/authentication-check/", token=account.token)
    assert (response.status_code, detail(response)) == (403, "Token disabled")


def test_inactive_user_is_refused_with_user_inactive(netbox: NetBoxServer, account: Account) -> None:
    patched = netbox.request("PATCH", f"/api/users/users/{account.user_id}/", token=netbox.admin_token,
                             json={"is_active": False})
    assert patched.status_code == 200
    response = netbox.request("GET", "/api/authentication-check/", token=account.token)
    assert (response.status_code, detail(response)) == (403, "User inactive")


def test_read_only_token_reads_but_cannot_write(netbox: NetBoxServer, account: Account) -> None:
    _, read_only = netbox.create_token(account.user_id, write_enabled=False)
    assert netbox.authenticates(read_only)
    response = netbox.request("POST", "/api/users/tokens/", token=read_only,
                              json={"user": account.user_id})
    assert response.status_code == 403
    assert detail(response) == "You do not have permission to perform this action."
    assert len(netbox.tokens(account.user_id)) == 2


def test_token_restricted_to_other_networks_is_refused_from_loopback(
    netbox: NetBoxServer, account: Account,
) -> None:
    _, token = netbox.create_token(account.user_id, allowed_ips=["192.0.2.0/24"])
    response = netbox.request("GET", "/api/authentication-check/", token=token)
    assert response.status_code == 403
    assert detail(response) == ("Source IP 127.0.0.1 is not permitted to authenticate using "
                                "this token.")


# --- v1 tokens and provisioning ---------------------------------------------------------------


def test_v1_token_created_through_the_api_authenticates_with_token_scheme(
    netbox: NetBoxServer, account: Account,
) -> None:
    token_id, token = netbox.create_token(account.user_id, version=1, description="legacy")
    assert re.fullmatch(r"[A-Za-z0-9]{40}", token)
    assert auth_header(token) == f"Token {token}"
    assert netbox.authenticates(token)
    listed = {t["id"]: t for t in netbox.tokens(account.user_id)}
    assert listed[token_id]["version"] == 1
    assert listed[token_id]["key"] is None


def test_provision_exchanges_a_password_for_a_v2_token(netbox: NetBoxServer, account: Account) -> None:
    created = netbox.request("POST", "/api/users/tokens/provision/",
                             json={"username": account.username, "password": account.password})
    assert created.status_code == 201
    assert netbox.authenticates(token_plaintext(created.json()))
    refused = netbox.request("POST", "/api/users/tokens/provision/",
                             json={"username": account.username, "password": "Wrong-Passw0rd-1"})
    assert (refused.status_code, detail(refused)) == (403, "Invalid username/password")


# --- the helpers themselves -------------------------------------------------------------------


def test_create_user_as_superuser_may_make_tokens_for_others(
    netbox: NetBoxServer, account: Account,
) -> None:
    boss = netbox.create_user(f"boss-{account.username}", superuser=True)
    _, boss_token = netbox.create_token(boss)
    created = netbox.request("POST", "/api/users/tokens/", token=boss_token,
                             json={"user": account.user_id, "description": "from boss"})
    assert created.status_code == 201
    assert netbox.authenticates(token_plaintext(created.json()))


def test_server_is_verified_tls_only(netbox: NetBoxServer) -> None:
    assert netbox.url.startswith("https://127.0.0.1:")
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{netbox.url}/api/status/", timeout=30)  # the system CAs do not know it
