"""Fixtures for the Key Vault twin tests: a fresh twin per test, raw HTTPS, an Event Grid sink.

The Azure SDK caches Key Vault challenges per ``host:port`` for the whole process; the cache is
cleared around every test so each test sees the SDK's full first-contact flow.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import pytest
from azure.keyvault.secrets import SecretClient
from azure.keyvault.secrets._shared import http_challenge_cache

from twins.keyvault import KeyVaultTwin

RAW_TOKEN = "raw-token"


@pytest.fixture(autouse=True)
def _clear_challenge_cache() -> Iterator[None]:
    http_challenge_cache.clear()
    yield
    http_challenge_cache.clear()


@pytest.fixture
def twin() -> Iterator[KeyVaultTwin]:
    with KeyVaultTwin(vault_name="kv-test") as running:
        yield running


@pytest.fixture
def client(twin: KeyVaultTwin) -> Iterator[SecretClient]:
    with twin.secret_client() as secret_client:
        yield secret_client


@dataclass
class RawResponse:
    """Status, headers and decoded JSON body of a raw HTTPS call to the twin."""

    status: int
    headers: dict[str, str]
    body: Any


def raw_request(
    twin: KeyVaultTwin,
    method: str,
    path: str,
    body: Any = None,
    token: str | None = RAW_TOKEN,
) -> RawResponse:
    """Call the twin without the SDK, to see the wire exactly (headers, bodies, nextLink)."""
    context = ssl.create_default_context(cafile=str(twin.ca_path))
    address = urlsplit(twin.url)
    connection = http.client.HTTPSConnection(
        address.hostname or "127.0.0.1", address.port, context=context, timeout=5
    )
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    data = None
    if body is not None:
        data = json.dumps(body).encode("utf-8")
        headers["Content-Type"] = "application/json"
    try:
        connection.request(method, path, body=data, headers=headers)
        response = connection.getresponse()
        payload = response.read()
        return RawResponse(response.status, dict(response.headers), json.loads(payload) if payload else None)
    finally:
        connection.close()


RawCall = Callable[..., RawResponse]


@pytest.fixture
def raw(twin: KeyVaultTwin) -> RawCall:
    """``raw(method, path, body=None, token=RAW_TOKEN)`` against the test's twin."""

    def call(method: str, path: str, body: Any = None, token: str | None = RAW_TOKEN) -> RawResponse:
        return raw_request(twin, method, path, body, token)

    return call


@pytest.fixture
def free_port() -> int:
    """A TCP port nothing listens on (free when checked; good enough for local tests)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@dataclass
class EventSink:
    """A local webhook standing in for an Event Grid subscriber endpoint.

    It answers each POST with the next status in ``statuses`` and 202 once they run out, and
    keeps every delivery's headers (exact case) and JSON body.
    """

    url: str
    deliveries: list[tuple[dict[str, str], Any]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


@pytest.fixture
def event_sink() -> Iterator[EventSink]:
    sink = EventSink(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length))
            with sink.lock:
                sink.deliveries.append((dict(self.headers), body))
                status = sink.statuses.pop(0) if sink.statuses else 202
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    sink.url = f"http://127.0.0.1:{server.server_address[1]}/api/events"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield sink
    server.shutdown()
    server.server_close()
    thread.join()
