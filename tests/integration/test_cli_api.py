"""``akv-rotator --api URL``: the installed console script, in a subprocess, against the app's
HTTP functions served by a stand-in for the Functions host (HTTPS, function key), each command
compared with the same command in direct mode for the same facts.

The host serves the in-process app, so both modes share its settings and sqlite journal (the
``app_settings`` fixture put them in os.environ). Whatever the CLI prints goes through the
``app`` fixture's leak guard with the HTTP bodies.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.keyvault.secrets import SecretClient

from tests.integration.conftest import App, SecretFactory
from tests.support.cli import Ran, run_cli
from tests.support.functions_host import FunctionsHost
from tests.support.postgres import PostgresServer

Cli = Callable[..., Ran]


@pytest.fixture
def host(app: App, monkeypatch: pytest.MonkeyPatch) -> Iterator[FunctionsHost]:
    """function_app behind a function key over HTTPS; the CLI's own variables start unset."""
    import function_app

    monkeypatch.delenv("AKV_ROTATOR_API", raising=False)
    monkeypatch.delenv("AKV_ROTATOR_FUNCTION_KEY", raising=False)
    with FunctionsHost(function_app.app) as running:
        yield running


@pytest.fixture
def cli(app: App, host: FunctionsHost) -> Iterator[Cli]:
    """``cli(args)`` in direct mode, ``cli(args, api=True)`` through the host with its key and
    CA; ``env`` overrides (a value of None removes the variable)."""

    def run(*args: str, api: bool = False, env: dict[str, str | None] | None = None) -> Ran:
        extra: dict[str, str | None] = {}
        if api:
            extra = {"AKV_ROTATOR_FUNCTION_KEY": host.key, "REQUESTS_CA_BUNDLE": str(host.ca_path)}
            args = ("--api", host.url, *args)
        return run_cli(args, app.said.http_bodies, {**extra, **(env or {})})

    yield run
    outputs = app.said.http_bodies
    assert not [text for text in outputs if host.key in text], "the function key was printed"


def checks(plan: dict[str, Any]) -> list[tuple[str, str]]:
    return [(c["check"], c["status"]) for c in plan["checks"]]


def test_plan_over_the_api_is_the_direct_plan(cli: Cli, db_secret: SecretFactory) -> None:
    secret = db_secret()
    direct, api = cli("plan", secret.name, "-o", "json"), cli("plan", secret.name, "-o", "json", api=True)
    assert (direct.code, api.code) == (0, 0), (direct.err, api.err)
    [direct_plan], [api_plan] = direct.json()["plans"], api.json()["plans"]
    assert checks(api_plan) == checks(direct_plan)
    assert ("current-credential", "pass") in checks(api_plan)
    for plan in (direct_plan, api_plan):
        assert (plan["verdict"], plan["secret"], plan["version"]) == ("ok", secret.name, secret.version)
        assert (plan["target"], plan["strategy"]) == ("test-pg", "single-user")
    table = cli("plan", secret.name, api=True)
    assert table.code == 0, table.err
    assert f"plan for kv-test/{secret.name}" in table.out and "verdict ok" in table.out
    shown = [(row[0], row[1]) for row in table.rows() if row[0] in dict(checks(api_plan))]
    assert shown == checks(api_plan)


def test_status_over_the_api_lists_what_direct_mode_lists(
        cli: Cli, kv: SecretClient, db_secret: SecretFactory) -> None:
    first, second = db_secret(), db_secret()
    kv.set_secret("db-not-opted-in", "Plain-Value-Not-Rotated-1")
    direct, api = cli("status", "-o", "json"), cli("status", "-o", "json", api=True)
    assert (direct.code, api.code) == (0, 0), (direct.err, api.err)

    def facts(answer: dict[str, Any]) -> list[tuple[str, str, str]]:
        return [(row["secret"], row["target"], row["state"]) for row in answer["secrets"]]

    expected = sorted((s.name, "test-pg", "never-rotated") for s in (first, second))
    assert facts(direct.json()) == facts(api.json()) == expected
    assert api.json()["vaults"] == direct.json()["vaults"] == ["kv-test"]
    table = cli("status", api=True)
    assert table.code == 0, table.err
    rows = [row for row in table.rows() if row[0] == "kv-test"]
    assert [(row[1], row[2], row[8]) for row in rows] == expected


def test_rotate_over_the_api_rotates_as_direct_mode_does(
        cli: Cli, kv: SecretClient, postgres: PostgresServer, db_secret: SecretFactory) -> None:
    over_api, direct = db_secret(), db_secret()
    ran = {over_api.name: cli("rotate", over_api.name, "--reason", "quarterly rotation", "-o", "json",
                              api=True),
           direct.name: cli("rotate", direct.name, "--reason", "quarterly rotation", "-o", "json")}
    for secret in (over_api, direct):
        result = ran[secret.name]
        assert result.code == 0, result.err
        record = result.json()
        current = kv.get_secret(secret.name)
        assert record["status"] == "succeeded"
        assert (record["oldVersion"], record["newVersion"]) == (secret.version,
                                                                current.properties.version)
        password = json.loads(current.value or "")["password"]
        assert postgres.can_login(secret.role, password)
        assert not postgres.can_login(secret.role, secret.password)
    assert ran[over_api.name].json()["trigger"]["source"] == "http"
    assert ran[over_api.name].json()["trigger"]["reference"] == "function-key: quarterly rotation"
    assert ran[direct.name].json()["trigger"]["source"] == "cli"
    assert ran[direct.name].json()["trigger"]["reference"].endswith(": quarterly rotation")


def test_history_and_show_over_the_api_are_the_journal_direct_mode_reads(
        cli: Cli, db_secret: SecretFactory) -> None:
    secret = db_secret()
    rotated = [cli("rotate", secret.name, "-o", "json", api=True) for _ in range(2)]
    assert [r.code for r in rotated] == [0, 0], [r.err for r in rotated]
    ids = [r.json()["rotationId"] for r in reversed(rotated)]  # newest first
    direct, api = cli("history", secret.name, "-o", "json"), cli("history", secret.name, "-o", "json",
                                                                 api=True)
    assert (direct.code, api.code) == (0, 0), (direct.err, api.err)
    for answer in (direct.json(), api.json()):
        assert answer["secret"] == secret.name
        assert [(r["rotationId"], r["status"]) for r in answer["rotations"]] == [
            (i, "succeeded") for i in ids]
    table = cli("history", secret.name, api=True)
    assert [(row[0], row[3]) for row in table.rows() if row[0] in ids] == [(i, "succeeded") for i in ids]

    shown = {mode: cli("show", ids[0], "-o", "json", api=mode == "api") for mode in ("direct", "api")}
    assert [r.code for r in shown.values()] == [0, 0]
    direct_view, api_view = shown["direct"].json(), shown["api"].json()
    for field in ("rotationId", "status", "oldVersion", "newVersion", "trigger"):
        assert direct_view[field] == api_view[field], field
    assert [s["step"] for s in api_view["steps"]] == [s["step"] for s in direct_view["steps"]]
    assert api_view["newVersion"] == rotated[1].json()["newVersion"]
    view = {row[0]: row[1:] for row in cli("show", ids[0], api=True).rows()}
    assert view["rotation"] == [ids[0]] and view["status"] == ["succeeded"]


def test_retry_refuses_a_succeeded_rotation_in_both_modes(cli: Cli, db_secret: SecretFactory) -> None:
    secret = db_secret()
    rotated = cli("rotate", secret.name, "-o", "json", api=True)
    assert rotated.code == 0, rotated.err
    rotation_id = rotated.json()["rotationId"]
    for api in (False, True):
        refused = cli("retry", rotation_id, api=api)
        assert refused.code == 2, refused.err
        assert f"rotation {rotation_id} is succeeded, not failed" in refused.err
    history = cli("history", secret.name, "-o", "json", api=True).json()["rotations"]
    assert [r["rotationId"] for r in history] == [rotation_id]  # nothing new started


def test_plain_http_to_a_remote_host_is_refused_before_anything_is_sent(cli: Cli) -> None:
    refused = cli("--api", "http://example.invalid", "status", env={"AKV_ROTATOR_FUNCTION_KEY": "k" * 40})
    assert (refused.code, refused.out) == (2, "")
    assert "only sent over https" in refused.err
    assert "ConnectionError" not in refused.err  # refused before any lookup or connection


def test_api_mode_without_the_function_key_is_a_usage_error(cli: Cli, host: FunctionsHost) -> None:
    refused = cli("--api", host.url, "status", env={"REQUESTS_CA_BUNDLE": str(host.ca_path)})
    assert (refused.code, refused.out) == (2, "")
    assert "AKV_ROTATOR_FUNCTION_KEY" in refused.err


def test_a_wrong_function_key_is_refused_by_the_host(cli: Cli, db_secret: SecretFactory) -> None:
    secret = db_secret()
    for args in (("status",), ("plan", secret.name), ("rotate", secret.name)):
        refused = cli(*args, api=True, env={"AKV_ROTATOR_FUNCTION_KEY": "not-the-function-key"})
        assert (refused.code, refused.out) == (1, ""), args
        assert "HTTP 401" in refused.err and "function key was refused" in refused.err
    history = cli("history", secret.name, "-o", "json", api=True)
    assert history.code == 0 and history.json()["rotations"] == []


def test_tls_is_verified_against_the_ca_bundle(cli: Cli, host: FunctionsHost) -> None:
    refused = cli("status", api=True, env={"REQUESTS_CA_BUNDLE": None})
    assert (refused.code, refused.out) == (1, "")
    assert "TLS verification failed" in refused.err and "REQUESTS_CA_BUNDLE" in refused.err


def test_commands_that_need_the_operators_identity_refuse_api_mode(
        cli: Cli, kv: SecretClient, db_secret: SecretFactory, tmp_path: Path) -> None:
    secret = db_secret(tags={"rotator-dr": "true"})
    onboard = cli("onboard", secret.name, "--target", "test-pg", api=True)
    assert (onboard.code, onboard.out) == (2, "")
    assert "onboard works with your own Azure identity: run it without --api" in onboard.err
    out = tmp_path / "secrets.dr.enc.yaml"
    export = cli("dr", "export", "--age", "age1" + "q" * 58, "--out", str(out), api=True)
    assert (export.code, export.out) == (2, "")
    assert "dr export works with your own Azure identity" in export.err
    assert not out.exists()
    assert [p.version for p in kv.list_properties_of_secret_versions(secret.name)] == [secret.version]
