"""The Jenkins twin's API-token protocol over real HTTPS, checked against what Jenkins does.

Sections follow the facts of the team's Jenkins API-token reference notes (F2 generate, F3
authentication, F4 rejections, F5 revoke, F6 the others, F7 crumbs, F9 legacy tokens), each
taken from jenkinsci/jenkins@ff9430ee. Requests go through ``requests`` verifying the twin's
own CA.
"""

from __future__ import annotations

import base64
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import requests

from twins.jenkins import JenkinsTwin, TokenInfo

USER = "svc-rotator"
OTHER = "alice"
ADMIN = "root-admin"
TOKEN_VALUE = re.compile(r"11[0-9a-f]{32}")
# 2026-03-10 12:00:00.25 UTC: a fixed "now" for names and expiry dates.
FIXED_NOW = datetime(2026, 3, 10, 12, 0, 0, 250000, tzinfo=UTC).timestamp()
REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def jenkins() -> Iterator[JenkinsTwin]:
    """A twin with a service user (one token, ``bootstrap``), a second user and an admin."""
    with JenkinsTwin() as twin:
        twin.add_user(USER, full_name="Rotation service")
        twin.add_user(OTHER)
        twin.add_user(ADMIN, admin=True)
        yield twin


@pytest.fixture
def bootstrap(jenkins: JenkinsTwin) -> str:
    """The service user's first token."""
    return jenkins.add_token(USER, "bootstrap")


def who_am_i(twin: JenkinsTwin, user: str | None = None, secret: str | None = None) -> requests.Response:
    with twin.session(user, secret) as session:
        return session.get(f"{twin.url}whoAmI/api/json", timeout=5)


def call(
    twin: JenkinsTwin, method: str, user: str, secret: str, owner: str = USER, **params: str
) -> requests.Response:
    """POST a token web method of ``owner`` as ``user``, parameters as a form body (as the UI)."""
    with twin.session(user, secret) as session:
        return session.post(f"{twin.descriptor_url(owner)}{method}", data=params, timeout=5)


def generate(twin: JenkinsTwin, user: str, secret: str, **params: str) -> dict[str, Any]:
    response = call(twin, "generateNewToken", user, secret, owner=user, **params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


# -- generateNewToken (F2) and proof with whoAmI (F3) -----------------------------------


def test_generate_answers_ok_json_and_the_new_token_proves_itself(
    jenkins: JenkinsTwin, bootstrap: str
) -> None:
    response = call(jenkins, "generateNewToken", USER, bootstrap, newTokenName="rotated-1")

    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json; charset=UTF-8"
    body = response.json()
    assert body["status"] == "ok"
    assert set(body["data"]) == {"tokenUuid", "tokenName", "tokenValue", "expirationDate", "aboutToExpire"}
    data = body["data"]
    assert TOKEN_VALUE.fullmatch(data["tokenValue"])
    assert str(uuid.UUID(data["tokenUuid"])) == data["tokenUuid"]
    assert data["tokenName"] == "rotated-1"
    assert data["expirationDate"] == "never"  # the API default, unlike the UI's 30 days
    assert data["aboutToExpire"] is False

    proof = who_am_i(jenkins, USER, data["tokenValue"])
    assert proof.status_code == 200
    assert proof.headers["Content-Type"] == "application/json;charset=UTF-8"
    assert proof.json() == {
        "_class": "hudson.security.WhoAmI",
        "anonymous": False,
        "authenticated": True,
        "authorities": ["authenticated"],
        "name": USER,
    }
    assert [t.name for t in jenkins.tokens(USER)] == ["bootstrap", "rotated-1"]
    assert jenkins.tokens(USER)[1] == TokenInfo(data["tokenUuid"], "rotated-1", None)


def test_parameters_come_from_the_query_string_before_the_form_body(
    jenkins: JenkinsTwin, bootstrap: str
) -> None:
    with jenkins.session(USER, bootstrap) as session:
        response = session.post(
            f"{jenkins.descriptor_url(USER)}generateNewToken/?newTokenName=from-query",  # trailing / too
            data={"newTokenName": "from-body"},
            timeout=5,
        )

    assert response.json()["data"]["tokenName"] == "from-query"


def test_blank_name_becomes_token_created_on_iso_offset_time() -> None:
    with JenkinsTwin(clock=lambda: FIXED_NOW) as twin:
        twin.add_user(USER)
        token = twin.add_token(USER)

        data = generate(twin, USER, token, newTokenName="   ")["data"]

    assert data["tokenName"] == "Token created on 2026-03-10T12:00:00.25Z"


@pytest.mark.parametrize(
    ("params", "expires", "shown", "about_to_expire"),
    [
        ({}, None, "never", False),
        ({"expirationDuration": "never"}, None, "never", False),
        ({"expirationDuration": " 30 "}, date(2026, 4, 9), "4/9/26", False),
        ({"expirationDuration": "7"}, date(2026, 3, 17), "3/17/26", False),
        ({"expirationDuration": "3"}, date(2026, 3, 13), "3/13/26", True),
        ({"expirationDuration": "0"}, date(2026, 3, 10), "3/10/26", True),
        (
            {"expirationDuration": "custom", "tokenExpiration": "2027-01-31"},
            date(2027, 1, 31),
            "1/31/27",
            False,
        ),
    ],
)
def test_expiration_duration(
    params: dict[str, str], expires: date | None, shown: str, about_to_expire: bool
) -> None:
    with JenkinsTwin(clock=lambda: FIXED_NOW) as twin:
        twin.add_user(USER)
        token = twin.add_token(USER, "bootstrap")

        data = generate(twin, USER, token, newTokenName="t", **params)["data"]

        assert (data["expirationDate"], data["aboutToExpire"]) == (shown, about_to_expire)
        assert twin.tokens(USER)[-1].expires == expires


@pytest.mark.parametrize(
    "params",
    [
        {"expirationDuration": "-1"},
        {"expirationDuration": "custom", "tokenExpiration": "2026-03-09"},
    ],
)
def test_expiry_in_the_past_is_an_ok_status_error_and_creates_nothing(params: dict[str, str]) -> None:
    with JenkinsTwin(clock=lambda: FIXED_NOW) as twin:
        twin.add_user(USER)
        token = twin.add_token(USER, "bootstrap")

        response = call(twin, "generateNewToken", USER, token, **params)

        assert response.status_code == 200
        assert response.json() == {"status": "error", "message": "Expiration date is in the past."}
        assert len(twin.tokens(USER)) == 1


@pytest.mark.parametrize(
    "params",
    [
        {"expirationDuration": "thirty"},
        {"expirationDuration": "custom", "tokenExpiration": "31/01/2027"},
        {"expirationDuration": "custom"},
    ],
)
def test_unparsable_expiry_is_a_server_error_page(
    jenkins: JenkinsTwin, bootstrap: str, params: dict[str, str]
) -> None:
    response = call(jenkins, "generateNewToken", USER, bootstrap, **params)

    assert response.status_code == 500
    assert response.headers["Content-Type"].startswith("text/html")
    assert len(jenkins.tokens(USER)) == 1


def test_expiration_date_is_shown_in_the_request_locale() -> None:
    with JenkinsTwin(clock=lambda: FIXED_NOW) as twin:
        twin.add_user(USER)
        token = twin.add_token(USER)
        with twin.session(USER, token) as session:
            german = session.post(
                f"{twin.descriptor_url(USER)}generateNewToken",
                data={"expirationDuration": "30"},
                headers={"Accept-Language": "de-DE,de;q=0.9"},
                timeout=5,
            )

    assert german.json()["data"]["expirationDate"] == "09.04.26"


def test_expired_token_stops_authenticating_when_the_clock_moves(
    jenkins: JenkinsTwin, bootstrap: str
) -> None:
    short = generate(jenkins, USER, bootstrap, expirationDuration="1")["data"]["tokenValue"]

    assert who_am_i(jenkins, USER, short).status_code == 200
    jenkins.advance(days=1)  # expiry day itself: still valid (expiry < today is expired)
    assert who_am_i(jenkins, USER, short).status_code == 200
    jenkins.advance(days=1)
    expired = who_am_i(jenkins, USER, short)
    assert expired.status_code == 401
    assert expired.headers["WWW-Authenticate"] == 'Basic realm="Jenkins"'
    assert who_am_i(jenkins, USER, bootstrap).status_code == 200  # never-expiring token
    assert len(jenkins.tokens(USER)) == 2  # expired tokens stay listed until revoked


def test_only_the_user_itself_may_generate(jenkins: JenkinsTwin, bootstrap: str) -> None:
    other_token = jenkins.add_token(OTHER)
    admin_token = jenkins.add_token(ADMIN)

    by_other = call(jenkins, "generateNewToken", OTHER, other_token, owner=USER)
    by_admin = call(jenkins, "generateNewToken", ADMIN, admin_token, owner=USER)

    for refused in (by_other, by_admin):
        assert refused.status_code == 403
        assert refused.content == b""
    assert [t.name for t in jenkins.tokens(USER)] == ["bootstrap"]


def test_admin_may_generate_for_others_only_with_the_jvm_property() -> None:
    with JenkinsTwin(admin_can_generate_new_tokens=True) as twin:
        twin.add_user(USER)
        twin.add_user(ADMIN, admin=True)
        twin.add_user(OTHER)
        admin_token = twin.add_token(ADMIN)
        other_token = twin.add_token(OTHER)

        assert call(twin, "generateNewToken", ADMIN, admin_token, owner=USER).status_code == 200
        assert call(twin, "generateNewToken", OTHER, other_token, owner=USER).status_code == 403
        assert len(twin.tokens(USER)) == 1


def test_unknown_user_in_the_path_is_404(jenkins: JenkinsTwin, bootstrap: str) -> None:
    assert call(jenkins, "generateNewToken", USER, bootstrap, owner="nobody").status_code == 404
    assert call(jenkins, "noSuchMethod", USER, bootstrap).status_code == 404


def test_user_ids_are_case_insensitive(jenkins: JenkinsTwin, bootstrap: str) -> None:
    response = call(jenkins, "generateNewToken", "SVC-Rotator", bootstrap, owner="Svc-ROTATOR")

    assert response.status_code == 200
    assert who_am_i(jenkins, "SVC-ROTATOR", bootstrap).json()["name"] == USER


# -- authentication (F3, F4) ------------------------------------------------------------


def _basic(raw: bytes) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


@pytest.mark.parametrize(
    "headers",
    [
        _basic(b"svc-rotator:11" + b"0" * 32),  # wrong token
        _basic(b"nobody:whatever"),  # unknown user
        _basic(b"svc-rotator"),  # no colon
        {"Authorization": "Basic !!not-base64!!"},
    ],
    ids=["wrong-token", "unknown-user", "no-colon", "bad-base64"],
)
def test_bad_credentials_are_401_even_on_who_am_i(jenkins: JenkinsTwin, headers: dict[str, str]) -> None:
    with jenkins.session() as session:
        response = session.get(f"{jenkins.url}whoAmI/api/json", headers=headers, timeout=5)

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Basic realm="Jenkins"'


def test_a_token_counts_only_for_its_own_user(jenkins: JenkinsTwin, bootstrap: str) -> None:
    assert who_am_i(jenkins, OTHER, bootstrap).status_code == 401


def test_basic_scheme_is_case_insensitive_and_other_schemes_are_ignored(
    jenkins: JenkinsTwin, bootstrap: str
) -> None:
    encoded = base64.b64encode(f"{USER}:{bootstrap}".encode()).decode()
    with jenkins.session() as session:
        mixed = session.get(f"{jenkins.url}whoAmI/api/json", headers={"Authorization": f"bAsIc {encoded}"})
        bearer = session.get(
            f"{jenkins.url}whoAmI/api/json", headers={"Authorization": f"Bearer {bootstrap}"}
        )

    assert mixed.json()["name"] == USER
    assert bearer.status_code == 200
    assert bearer.json()["anonymous"] is True


def test_anonymous_is_answered_on_who_am_i_and_refused_403_elsewhere(jenkins: JenkinsTwin) -> None:
    anonymous = who_am_i(jenkins)
    with jenkins.session() as session:
        me = session.get(f"{jenkins.url}me/api/json", timeout=5)

    assert anonymous.json() == {
        "_class": "hudson.security.WhoAmI",
        "anonymous": True,
        "authenticated": True,  # Spring's AnonymousAuthenticationToken says so
        "authorities": ["anonymous"],
        "name": "anonymous",
    }
    assert me.status_code == 403
    assert "WWW-Authenticate" not in me.headers
    assert me.headers["X-You-Are-Authenticated-As"] == "anonymous"


def test_me_describes_the_caller(jenkins: JenkinsTwin, bootstrap: str) -> None:
    with jenkins.session(USER, bootstrap) as session:
        response = session.get(f"{jenkins.url}me/api/json", timeout=5)

    assert response.json() == {
        "_class": "hudson.model.User",
        "absoluteUrl": f"{jenkins.url}user/{USER}",
        "description": None,
        "fullName": "Rotation service",
        "id": USER,
        "property": [{"_class": "jenkins.security.ApiTokenProperty"}],
    }


def test_token_matching_ignores_the_version_prefix_and_takes_the_bare_secret(
    jenkins: JenkinsTwin, bootstrap: str
) -> None:
    secret = bootstrap[2:]

    assert who_am_i(jenkins, USER, "99" + secret).status_code == 200  # prefix not compared
    assert who_am_i(jenkins, USER, secret).status_code == 200  # 32 chars: hashed whole, as legacy
    assert who_am_i(jenkins, USER, secret.upper()).status_code == 401


def test_legacy_token_works_until_revoked(jenkins: JenkinsTwin, bootstrap: str) -> None:
    legacy = jenkins.add_token(USER, legacy=True)
    (legacy_info,) = [t for t in jenkins.tokens(USER) if t.name == "Legacy Token"]

    assert re.fullmatch(r"[0-9a-f]{32}", legacy)
    assert who_am_i(jenkins, USER, legacy).json()["name"] == USER
    assert call(jenkins, "revoke", USER, bootstrap, tokenUuid=legacy_info.uuid).status_code == 200
    assert who_am_i(jenkins, USER, legacy).status_code == 401


# -- revoke and friends (F5, F6) --------------------------------------------------------


def test_rotation_overlap_then_revoke_of_the_old_token(jenkins: JenkinsTwin, bootstrap: str) -> None:
    old_uuid = jenkins.tokens(USER)[0].uuid
    new = generate(jenkins, USER, bootstrap, newTokenName="next")["data"]

    assert who_am_i(jenkins, USER, bootstrap).status_code == 200  # both work during the overlap
    assert who_am_i(jenkins, USER, new["tokenValue"]).status_code == 200

    revoked = call(jenkins, "revoke", USER, new["tokenValue"], tokenUuid=old_uuid)
    assert revoked.status_code == 200
    assert revoked.content == b""
    assert who_am_i(jenkins, USER, bootstrap).status_code == 401  # effect is immediate
    assert who_am_i(jenkins, USER, new["tokenValue"]).status_code == 200
    assert [t.uuid for t in jenkins.tokens(USER)] == [new["tokenUuid"]]


def test_revoke_of_an_unknown_uuid_is_200_and_repeatable(jenkins: JenkinsTwin, bootstrap: str) -> None:
    second = generate(jenkins, USER, bootstrap)["data"]

    for _ in range(2):
        response = call(jenkins, "revoke", USER, bootstrap, tokenUuid=second["tokenUuid"])
        assert (response.status_code, response.content) == (200, b"")
    assert call(jenkins, "revoke", USER, bootstrap, tokenUuid="invalid-uuid").status_code == 200
    assert len(jenkins.tokens(USER)) == 1


def test_revoke_with_a_blank_uuid_is_400(jenkins: JenkinsTwin, bootstrap: str) -> None:
    assert call(jenkins, "revoke", USER, bootstrap, tokenUuid=" ").status_code == 400
    assert call(jenkins, "revoke", USER, bootstrap).status_code == 400


def test_another_user_may_not_revoke(jenkins: JenkinsTwin, bootstrap: str) -> None:
    other_token = jenkins.add_token(OTHER)
    target = jenkins.tokens(USER)[0].uuid

    response = call(jenkins, "revoke", OTHER, other_token, tokenUuid=target)

    assert response.status_code == 403
    assert response.headers["X-You-Are-Authenticated-As"] == OTHER
    assert response.headers["X-Required-Permission"] == "hudson.model.Hudson.Administer"
    assert who_am_i(jenkins, USER, bootstrap).status_code == 200


def test_an_admin_may_revoke_another_users_token(jenkins: JenkinsTwin, bootstrap: str) -> None:
    admin_token = jenkins.add_token(ADMIN)

    response = call(jenkins, "revoke", ADMIN, admin_token, tokenUuid=jenkins.tokens(USER)[0].uuid)

    assert response.status_code == 200
    assert who_am_i(jenkins, USER, bootstrap).status_code == 401


@pytest.mark.parametrize("method", ["generateNewToken", "revoke", "revokeAll", "revokeAllExcept", "rename"])
@pytest.mark.parametrize("verb", ["GET", "PUT", "DELETE"])
def test_web_methods_are_post_only(jenkins: JenkinsTwin, bootstrap: str, method: str, verb: str) -> None:
    with jenkins.session(USER, bootstrap) as session:
        response = session.request(verb, f"{jenkins.descriptor_url(USER)}{method}", timeout=5)

    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"
    assert len(jenkins.tokens(USER)) == 1


def test_revoke_all_except_keeps_one_and_an_unknown_uuid_keeps_none(
    jenkins: JenkinsTwin, bootstrap: str
) -> None:
    keep = generate(jenkins, USER, bootstrap, newTokenName="keep")["data"]
    generate(jenkins, USER, bootstrap, newTokenName="drop")

    assert call(jenkins, "revokeAllExcept", USER, bootstrap, tokenUuid="").status_code == 400
    assert call(jenkins, "revokeAllExcept", USER, bootstrap, tokenUuid=keep["tokenUuid"]).status_code == 200
    assert [t.name for t in jenkins.tokens(USER)] == ["keep"]
    assert who_am_i(jenkins, USER, bootstrap).status_code == 401

    assert call(jenkins, "revokeAllExcept", USER, keep["tokenValue"], tokenUuid="unknown").status_code == 200
    assert jenkins.tokens(USER) == []


def test_revoke_all(jenkins: JenkinsTwin, bootstrap: str) -> None:
    generate(jenkins, USER, bootstrap)

    response = call(jenkins, "revokeAll", USER, bootstrap)

    assert (response.status_code, response.content) == (200, b"")
    assert jenkins.tokens(USER) == []


def test_rename_answers_status_json(jenkins: JenkinsTwin, bootstrap: str) -> None:
    token_uuid = jenkins.tokens(USER)[0].uuid

    def rename(**params: str) -> Any:
        response = call(jenkins, "rename", USER, bootstrap, **params)
        assert response.status_code == 200
        return response.json()

    assert rename(tokenUuid=token_uuid, newName=" ") == {
        "status": "error",
        "message": "The name cannot be empty",
    }
    assert rename(newName="x") == {"status": "error", "message": "The tokenUuid cannot be empty"}
    assert rename(tokenUuid="gone", newName="x") == {
        "status": "error",
        "message": "No token found, try refreshing the page",
    }
    assert rename(tokenUuid=token_uuid, newName="renamed") == {"status": "ok"}
    assert jenkins.tokens(USER)[0].name == "renamed"


# -- CSRF (F7) --------------------------------------------------------------------------


def test_password_posts_need_a_session_bound_crumb_token_posts_do_not(jenkins: JenkinsTwin) -> None:
    jenkins.add_user("human", password="correct horse")
    endpoint = f"{jenkins.descriptor_url('human')}generateNewToken"

    with jenkins.session("human", "correct horse") as session:
        refused = session.post(endpoint, timeout=5)
        crumb = session.get(f"{jenkins.url}crumbIssuer/api/json", timeout=5).json()
        header = {crumb["crumbRequestField"]: crumb["crumb"]}
        accepted = session.post(endpoint, headers=header, timeout=5)  # the session cookie goes along
    with jenkins.session("human", "correct horse") as fresh:
        without_session = fresh.post(endpoint, headers=header, timeout=5)

    assert refused.status_code == 403
    assert "No valid crumb was included in the request" in refused.text
    assert crumb["_class"] == "hudson.security.csrf.DefaultCrumbIssuer"
    assert crumb["crumbRequestField"] == "Jenkins-Crumb"
    assert accepted.status_code == 200
    assert without_session.status_code == 403
    token = accepted.json()["data"]["tokenValue"]
    assert call(jenkins, "generateNewToken", "human", token, owner="human").status_code == 200  # no crumb


# -- root URL with a context path --------------------------------------------------------


def test_context_path_is_part_of_every_url() -> None:
    with JenkinsTwin(context_path="jenkins") as twin:
        twin.add_user(USER)
        token = twin.add_token(USER)
        base = twin.url.removesuffix("jenkins/")

        assert re.fullmatch(r"https://127\.0\.0\.1:\d+/jenkins/", twin.url)
        assert who_am_i(twin, USER, token).json()["name"] == USER
        with twin.session(USER, token) as session:
            assert session.get(f"{base}whoAmI/api/json", timeout=5).status_code == 404
            assert session.get(f"{twin.url}me/api/json", timeout=5).json()["absoluteUrl"] == (
                f"{twin.url}user/{USER}"
            )
        assert generate(twin, USER, token)["status"] == "ok"


# -- packaging -------------------------------------------------------------------------


def test_importing_the_twin_pulls_in_no_rotator_code_and_no_azure_sdk() -> None:
    probe = (
        "import sys, twins.jenkins, twins.jenkins.__main__; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('rotation', 'handlers', 'azure')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO_ROOT, capture_output=True, text=True, check=True, timeout=60
    )

    assert result.stdout.strip() == "[]"


def test_expiry_uses_the_twins_time_zone() -> None:
    # 23:30 UTC on 2026-03-10 is already 2026-03-11 in UTC+2: "today" follows the controller.
    late = datetime(2026, 3, 10, 23, 30, tzinfo=UTC).timestamp()
    with (
        JenkinsTwin(clock=lambda: late, tz=UTC) as utc,
        JenkinsTwin(clock=lambda: late, tz=timezone(timedelta(hours=2))) as east,
    ):
        for twin in (utc, east):
            twin.add_user(USER)
        utc_today = generate(utc, USER, utc.add_token(USER), expirationDuration="0")["data"]
        east_today = generate(east, USER, east.add_token(USER), expirationDuration="0")["data"]

    assert (utc_today["expirationDate"], east_today["expirationDate"]) == ("3/10/26", "3/11/26")
