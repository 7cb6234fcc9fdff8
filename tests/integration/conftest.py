"""Fixtures for driving the real Functions app against the Key Vault twin and PostgreSQL.

Every test here gets a fresh twin, app settings pointing at it, fresh services, an empty span
exporter and a log capture; at teardown, every value the twin ever held is searched for in the
captured log lines, HTTP bodies and spans, and the test fails if one is found.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest
from azure.keyvault.secrets import KeyVaultSecret, SecretClient

from handlers import observability
from handlers.services import reset_services
from tests.support.leaks import CapturingHandler, Said, leaks, secret_material
from tests.support.payloads import decode_event, load_payload, retarget
from tests.support.postgres import PostgresServer
from tests.support.targets import DEFAULT_TARGET, targets_setting
from tests.support.telemetry import span_exporter
from twins.eventgrid import EventGridTwin
from twins.keyvault import KeyVaultTwin


@pytest.fixture
def app_settings(twin: KeyVaultTwin, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                 postgres: PostgresServer) -> dict[str, str]:
    settings = {
        "ROTATOR_TARGETS": targets_setting(postgres),
        "ROTATOR_JOURNAL": f"sqlite:{tmp_path / 'journal.db'}",
        "ROTATOR_LEASE_SECONDS": "30",
        "ROTATOR_MAX_ATTEMPTS": "3",
        "ROTATOR_ATTEMPT_BACKOFF_SECONDS": "0",
        "ROTATOR_VAULTS": f"{twin.vault_name}={twin.url}",
        "ROTATOR_KEYVAULT_AUTH": "static-token",
        "ROTATOR_KEYVAULT_STATIC_TOKEN": "test-token",
        "ROTATOR_KEYVAULT_CA_BUNDLE": str(twin.ca_path),
        "ROTATOR_VALIDITY_DAYS": "45",
        "ROTATOR_RETRY_ATTEMPTS": "3",
        "ROTATOR_RETRY_INITIAL_SECONDS": "0.01",
        "ROTATOR_RETRY_MAX_SECONDS": "0.1",
        "ROTATOR_CONNECT_TIMEOUT_SECONDS": "3",
        "ROTATOR_KEYVAULT_TIMEOUT_SECONDS": "5",
    }
    for key, value in settings.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("APPLICATIONINSIGHTS_CONNECTION_STRING", raising=False)
    return settings


@pytest.fixture
def captured() -> Iterator[CapturingHandler]:
    handler = CapturingHandler()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)


@dataclass
class App:
    """The Functions app as the host would drive it, recording every HTTP body it returns."""

    said: Said
    last_headers: dict[str, str] = field(default_factory=dict)

    def deliver(self, payload: dict[str, Any]) -> None:
        import function_app

        function_app.keyvault_events(decode_event(payload))

    def post_rotate(self, name: str, *, body: bytes = b"", params: dict[str, str] | None = None,
                    headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
        import function_app

        request = func.HttpRequest(
            method="POST", url=f"http://localhost:7071/api/secrets/{name}/rotate",
            route_params={"name": name}, params=params or {}, body=body,
            headers={"content-type": "application/json", **(headers or {})},
        )
        return self._answer(function_app.rotate_secret(request))

    def get(self, route: str, route_params: dict[str, str],
            params: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
        import function_app

        request = func.HttpRequest(method="GET", url=f"http://localhost:7071/api/{route}",
                                   route_params=route_params, params=params or {}, body=b"")
        handler = (function_app.secrets if route == "secrets"
                   else function_app.secret_rotations if route.endswith("/rotations")
                   else function_app.rotation)
        return self._answer(handler(request))

    def sweep(self) -> None:
        from azure.functions.timer import TimerRequest

        import function_app

        function_app.sweeper(TimerRequest(past_due=False))

    def _answer(self, response: func.HttpResponse) -> tuple[int, dict[str, Any]]:
        text = response.get_body().decode()
        self.last_headers = dict(response.headers)
        self.said.http_bodies.append(text)
        return response.status_code, json.loads(text)


@pytest.fixture
def app(app_settings: dict[str, str], captured: CapturingHandler, twin: KeyVaultTwin,
        kv: SecretClient) -> Iterator[App]:
    """The app under test; on teardown, fails the test if any secret value was said."""
    exporter = span_exporter()
    exporter.clear()
    reset_services()
    said = Said(log_lines=captured.lines)
    yield App(said)
    said.spans = list(exporter.get_finished_spans())
    twin.clear_faults()
    reset_services()
    observability.reset_for_tests()
    found = leaks(said, secret_material(kv))
    assert not found, f"secret values appeared in logs, HTTP bodies or spans: {found}"


@pytest.fixture
def topic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
          app_settings: dict[str, str]) -> Iterator[EventGridTwin]:
    """An Event Grid topic twin the app publishes its rotation events to."""
    with EventGridTwin(cert_dir=tmp_path / "eventgrid", namespace_topics={"rotations"}) as running:
        monkeypatch.setenv("ROTATOR_EVENTS_ENDPOINT", running.topic_endpoint)
        monkeypatch.setenv("ROTATOR_EVENTS_CA_BUNDLE", str(running.ca_path))
        reset_services()
        yield running


@dataclass
class DatabaseSecret:
    """A PostgreSQL login bound to a Key Vault secret, as an operator would set it up."""

    name: str
    role: str
    password: str
    version: str


SecretFactory = Callable[..., DatabaseSecret]


@pytest.fixture
def declare_targets(postgres: PostgresServer,
                    monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Declare more operator targets (before the app first runs), as deployment config."""

    def declare(**targets: dict[str, Any]) -> None:
        monkeypatch.setenv("ROTATOR_TARGETS", targets_setting(postgres, **targets))
        reset_services()

    return declare


@pytest.fixture
def db_secret(postgres: PostgresServer, kv: SecretClient) -> SecretFactory:
    """Create a role with a password and a Key Vault secret opted in for it."""
    counter = iter(range(1_000_000))

    def make(*, tags: dict[str, str] | None = None, expires_in_days: float = 20,
             role: str | None = None, password: str | None = None) -> DatabaseSecret:
        n = next(counter)
        role_name = role or f"app_{datetime.now(UTC):%H%M%S%f}_{n}"
        first = password or f"First-Passw0rd-{role_name}"
        postgres.create_role(role_name, first)
        name = f"db-{role_name.replace('_', '-')}"
        base_tags = {"rotator-target": DEFAULT_TARGET, "owner": "platform-team"}
        stored: KeyVaultSecret = kv.set_secret(
            name, json.dumps({"username": role_name, "password": first}),
            content_type="application/json", tags={**base_tags, **(tags or {})},
            expires_on=datetime.now(UTC) + timedelta(days=expires_in_days),
        )
        return DatabaseSecret(name, role_name, first, stored.properties.version or "")

    return make


def near_expiry(twin: KeyVaultTwin, secret: str, version: str,
                shape: str = "near_expiry_pascal") -> dict[str, Any]:
    """A golden near-expiry payload pointed at this twin's secret and version."""
    return retarget(load_payload(shape), vault=twin.vault_name, secret=secret, version=version)


def versions_of(kv: SecretClient, name: str) -> list[str]:
    return [v.version or "" for v in kv.list_properties_of_secret_versions(name)]
