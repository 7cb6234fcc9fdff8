"""The app as the Functions host indexes it: names, triggers, routes, auth levels."""

from __future__ import annotations

import json

import pytest


@pytest.fixture(scope="module")
def indexed() -> dict[str, dict]:
    """Index function_app once (``get_functions`` is not idempotent in azure-functions 1.x)."""
    import function_app

    function_app.app.functions_bindings = None
    return {
        f.get_function_name(): {
            "bindings": [json.loads(raw) for raw in f.get_raw_bindings()],
            "script": json.loads(f.get_function_json())["scriptFile"],
        }
        for f in function_app.app.get_functions()
    }


def test_exactly_the_expected_functions_are_registered(indexed: dict[str, dict]) -> None:
    assert set(indexed) == {"keyvault_events", "rotate_secret", "secrets", "secret_rotations",
                            "rotation", "sweeper", "credential_health", "queued_work",
                            "poisoned_work"}
    assert {fn["script"] for fn in indexed.values()} == {"function_app.py"}


def test_event_grid_function(indexed: dict[str, dict]) -> None:
    assert indexed["keyvault_events"]["bindings"] == [
        {"direction": "IN", "type": "eventGridTrigger", "name": "event"}]


def test_manual_rotation_route(indexed: dict[str, dict]) -> None:
    trigger, output = indexed["rotate_secret"]["bindings"]
    assert trigger == {"direction": "IN", "type": "httpTrigger", "name": "req",
                       "methods": ["POST"], "authLevel": "FUNCTION",
                       "route": "secrets/{name}/rotate"}
    assert output == {"direction": "OUT", "type": "http", "name": "$return"}


def test_history_routes(indexed: dict[str, dict]) -> None:
    routes = {name: indexed[name]["bindings"][0]
              for name in ("secrets", "secret_rotations", "rotation")}
    assert routes["secrets"]["route"] == "secrets"
    assert routes["secret_rotations"]["route"] == "secrets/{name}/rotations"
    assert routes["rotation"]["route"] == "rotations/{id}"
    for trigger in routes.values():
        assert trigger["type"] == "httpTrigger"
        assert trigger["methods"] == ["GET"] and trigger["authLevel"] == "FUNCTION"


@pytest.mark.parametrize(("function", "setting"), [
    ("sweeper", "ROTATOR_SWEEP_SCHEDULE"), ("credential_health", "ROTATOR_HEALTH_SCHEDULE")])
def test_timer_schedules_come_from_app_settings_and_never_run_on_start(
    indexed: dict[str, dict], function: str, setting: str,
) -> None:
    assert indexed[function]["bindings"] == [
        {"direction": "IN", "type": "timerTrigger", "name": "timer",
         "schedule": f"%{setting}%", "runOnStartup": False, "useMonitor": True}]


def test_importing_the_app_reads_no_settings_and_opens_nothing(monkeypatch) -> None:
    import importlib

    import function_app
    from handlers import services

    for key in [k for k in list(__import__("os").environ) if k.startswith("ROTATOR_")]:
        monkeypatch.delenv(key)
    services.reset_services()
    importlib.reload(function_app)  # must not raise without any setting
    assert services._services is None


@pytest.mark.parametrize(("function", "queue"), [
    ("queued_work", "%ROTATOR_QUEUE%"), ("poisoned_work", "%ROTATOR_QUEUE%-poison")])
def test_queue_functions_read_the_work_queue_and_its_poison_queue(
        indexed: dict[str, dict], function: str, queue: str) -> None:
    assert indexed[function]["bindings"] == [
        {"direction": "IN", "type": "queueTrigger", "name": "message", "queueName": queue,
         "connection": "AzureWebJobsStorage"}]
