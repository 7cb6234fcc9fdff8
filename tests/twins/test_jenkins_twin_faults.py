"""Injected faults on the Jenkins surface, the ``/_twin`` control surface, and the request log."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from twins.jenkins import Fault, JenkinsTwin, RecordedRequest

USER = "svc-rotator"


@pytest.fixture
def jenkins() -> Iterator[JenkinsTwin]:
    with JenkinsTwin(context_path="/jenkins/") as twin:
        twin.add_user(USER)
        yield twin


@pytest.fixture
def token(jenkins: JenkinsTwin) -> str:
    return jenkins.add_token(USER, "bootstrap")


def generate(twin: JenkinsTwin, token: str, timeout: float = 5) -> requests.Response:
    with twin.session(USER, token) as session:
        return session.post(
            f"{twin.descriptor_url(USER)}generateNewToken", data={"newTokenName": "next"}, timeout=timeout
        )


def who_am_i(twin: JenkinsTwin, token: str) -> requests.Response:
    with twin.session(USER, token) as session:
        return session.get(f"{twin.url}whoAmI/api/json", timeout=5)


def control(twin: JenkinsTwin, method: str, path: str, body: Any = None) -> requests.Response:
    with twin.session() as session:
        return session.request(method, f"{twin.control_url}{path}", json=body, timeout=5)


# -- faults --------------------------------------------------------------------------


def test_503_with_the_starting_page_for_the_next_n_matching_requests(
    jenkins: JenkinsTwin, token: str
) -> None:
    jenkins.inject(status=503, count=2, endpoint="generateNewToken", retry_after=5)

    first, second = generate(jenkins, token), generate(jenkins, token)
    whoami_meanwhile = who_am_i(jenkins, token)
    third = generate(jenkins, token)

    for failed in (first, second):
        assert failed.status_code == 503
        assert failed.headers["Retry-After"] == "5"
        assert "Please wait while Jenkins is getting ready to work" in failed.text
    assert whoami_meanwhile.status_code == 200  # another endpoint: not consumed
    assert third.status_code == 200
    assert [t.name for t in jenkins.tokens(USER)] == ["bootstrap", "next"]  # failed calls made nothing
    assert jenkins.faults == []


def test_other_statuses_get_a_jetty_page_or_the_given_body(jenkins: JenkinsTwin, token: str) -> None:
    jenkins.inject(status=502, method="GET")
    jenkins.inject(Fault(status=500, body="<html>boom</html>"))

    bad_gateway = who_am_i(jenkins, token)
    custom = generate(jenkins, token)

    assert bad_gateway.status_code == 502
    assert "HTTP ERROR 502 Bad Gateway" in bad_gateway.text
    assert (custom.status_code, custom.text) == (500, "<html>boom</html>")


def test_dropped_connection_before_processing_creates_nothing(jenkins: JenkinsTwin, token: str) -> None:
    jenkins.inject(status=0, endpoint="generateNewToken")

    with pytest.raises(requests.ConnectionError):
        generate(jenkins, token)

    assert len(jenkins.tokens(USER)) == 1


def test_lost_response_after_processing_leaves_a_token_the_client_never_saw(
    jenkins: JenkinsTwin, token: str
) -> None:
    jenkins.inject(status=0, method="POST", endpoint="generateNewToken", after_processing=True)

    with pytest.raises(requests.ConnectionError):
        generate(jenkins, token)

    orphan = jenkins.tokens(USER)[-1]
    assert orphan.name == "next"  # created, but its value is lost for good
    assert [r.status for r in jenkins.requests] == [0]
    with jenkins.session(USER, token) as session:  # the client can only clean up by uuid it lacks
        session.post(f"{jenkins.descriptor_url(USER)}revoke", data={"tokenUuid": orphan.uuid}, timeout=5)
    assert [t.name for t in jenkins.tokens(USER)] == ["bootstrap"]


def test_after_processing_error_status_also_applies_the_change(jenkins: JenkinsTwin, token: str) -> None:
    jenkins.inject(status=504, endpoint="generateNewToken", after_processing=True)

    assert generate(jenkins, token).status_code == 504
    assert len(jenkins.tokens(USER)) == 2


def test_slow_answer_times_the_client_out_while_the_change_lands(jenkins: JenkinsTwin, token: str) -> None:
    jenkins.inject(status=200, delay_seconds=0.6, endpoint="generateNewToken", after_processing=True)

    with pytest.raises(requests.ReadTimeout):
        generate(jenkins, token, timeout=0.2)

    assert len(jenkins.tokens(USER)) == 2


def test_slow_answer_before_processing_still_answers(jenkins: JenkinsTwin, token: str) -> None:
    jenkins.inject(status=200, delay_seconds=0.2, endpoint="whoAmI/api/json")

    assert who_am_i(jenkins, token).json()["name"] == USER


def test_faults_hit_before_authentication(jenkins: JenkinsTwin) -> None:
    jenkins.inject(status=503)

    assert who_am_i(jenkins, "not-a-token").status_code == 503
    assert who_am_i(jenkins, "not-a-token").status_code == 401


@pytest.mark.parametrize(
    "fields",
    [
        {"status": 302},
        {"status": 200},
        {"count": 0},
        {"delay_seconds": 61},
        {"status": 0, "delay_seconds": -1},
    ],
)
def test_invalid_faults_are_refused(jenkins: JenkinsTwin, fields: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        jenkins.inject(**fields)


def test_clear_faults(jenkins: JenkinsTwin, token: str) -> None:
    jenkins.inject(status=503, count=5)

    assert jenkins.clear_faults() == 1
    assert who_am_i(jenkins, token).status_code == 200


def test_request_log_names_the_caller_and_never_control_calls(jenkins: JenkinsTwin, token: str) -> None:
    who_am_i(jenkins, token)
    who_am_i(jenkins, "wrong")
    control(jenkins, "GET", "health")

    assert list(jenkins.requests) == [
        RecordedRequest("GET", "/jenkins/whoAmI/api/json", USER, 200),
        RecordedRequest("GET", "/jenkins/whoAmI/api/json", None, 401),
    ]


def test_stop_cuts_pooled_connections(token: str, jenkins: JenkinsTwin) -> None:
    session = jenkins.session(USER, token)
    assert session.get(f"{jenkins.url}whoAmI/api/json", timeout=5).status_code == 200

    jenkins.stop()

    with pytest.raises(requests.ConnectionError):
        session.get(f"{jenkins.url}whoAmI/api/json", timeout=5)
    session.close()


# -- the /_twin control surface --------------------------------------------------------


def test_control_surface_sits_at_the_server_root_outside_the_context_path(jenkins: JenkinsTwin) -> None:
    health = control(jenkins, "GET", "health")

    assert jenkins.control_url == jenkins.url.removesuffix("jenkins/") + "_twin/"
    assert health.json() == {"status": "ok", "url": jenkins.url}
    with jenkins.session() as session:
        assert session.get(f"{jenkins.url}_twin/health", timeout=5).status_code == 403  # Jenkins' space


def test_control_surface_manages_users_tokens_faults_and_time(jenkins: JenkinsTwin) -> None:
    added = control(jenkins, "POST", "users", {"id": "ops-admin", "admin": True, "password": "pw"})
    made = control(jenkins, "POST", f"users/{USER}/tokens", {"name": "seeded", "expires": "2099-01-01"})
    value = made.json()["tokenValue"]

    assert added.json() == {"id": "ops-admin", "fullName": "ops-admin", "admin": True}
    assert [u["id"] for u in control(jenkins, "GET", "users").json()] == [USER, "ops-admin"]
    assert who_am_i(jenkins, value).status_code == 200
    assert control(jenkins, "GET", f"users/{USER}/tokens").json() == [
        {"tokenUuid": made.json()["tokenUuid"], "tokenName": "seeded", "expirationDate": "2099-01-01"}
    ]

    armed = control(jenkins, "POST", "faults", {"status": 503, "endpoint": "whoAmI/api/json"})
    assert armed.json()["count"] == 1
    assert len(control(jenkins, "GET", "faults").json()) == 1
    assert control(jenkins, "DELETE", "faults").json() == {"cleared": 1}

    before = control(jenkins, "GET", "clock").json()["today"]
    after = control(jenkins, "POST", "clock", {"advanceDays": 365 * 80}).json()["today"]
    assert after > before
    assert who_am_i(jenkins, value).status_code == 401  # expired on 2099-01-01
    assert control(jenkins, "GET", "requests").json()[-1] == {
        "method": "GET",
        "path": "/jenkins/whoAmI/api/json",
        "caller": None,
        "status": 401,
    }


def test_control_surface_adds_fixed_and_legacy_tokens(jenkins: JenkinsTwin) -> None:
    fixed = "11" + "ab" * 16
    made = control(jenkins, "POST", f"users/{USER}/tokens", {"value": fixed, "uuid": "fixed-uuid"})
    legacy = control(jenkins, "POST", f"users/{USER}/tokens", {"legacy": True})

    assert made.json() == {"tokenUuid": "fixed-uuid", "tokenName": "twin token", "tokenValue": fixed}
    assert legacy.json()["tokenName"] == "Legacy Token"
    assert who_am_i(jenkins, fixed).status_code == 200
    assert who_am_i(jenkins, legacy.json()["tokenValue"]).status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("GET", "nothing-here", None, 404),
        ("POST", "users/nobody/tokens", {}, 404),
        ("POST", "users", {"fullName": "no id"}, 400),
        ("POST", "users", {"id": USER.upper()}, 400),  # ids are case-insensitive
        ("POST", "faults", {"status": 503, "colour": "red"}, 400),
        ("POST", "faults", {"status": 99}, 400),
        ("POST", f"users/{USER}/tokens", {"value": "12" + "0" * 32}, 400),
        ("POST", "clock", {"advanceDays": "tomorrow"}, 400),
    ],
)
def test_control_surface_rejects_bad_calls(
    jenkins: JenkinsTwin, method: str, path: str, body: Any, status: int
) -> None:
    response = control(jenkins, method, path, body)

    assert response.status_code == status
    assert "error" in response.json()


def test_control_calls_are_never_faulted(jenkins: JenkinsTwin) -> None:
    jenkins.inject(status=0, count=3)

    assert control(jenkins, "GET", "health").status_code == 200
    assert len(jenkins.faults) == 1
