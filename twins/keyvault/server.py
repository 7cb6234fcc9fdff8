"""HTTPS plumbing: a threaded ``http.server`` that hands every request to :class:`VaultApp`.

HTTP/1.1 with keep-alive, because the SDK's ``requests`` transport pools connections and a
server that closes after each response would hide connection-reuse bugs. TLS handshakes run
on the per-connection thread (``do_handshake_on_connect=False``), so one slow or broken
client cannot stall the accept loop. Open connections are tracked so ``close()`` really cuts
off pooled clients instead of serving them after the twin is "stopped".

Every response carries Key Vault's usual headers (``Content-Type: application/json;
charset=utf-8``, ``Cache-Control: no-cache``, ``x-ms-request-id``, the echoed
``x-ms-client-request-id``). Request lines are logged at DEBUG; bodies never are.
"""

from __future__ import annotations

import json
import logging
import socket
import ssl
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from twins.keyvault.routes import Response, VaultApp

logger = logging.getLogger(__name__)

SERVICE_VERSION = "1.9.0.0-twin"
CONNECTION_TIMEOUT = 30.0


class TwinHTTPServer(ThreadingHTTPServer):
    """Threaded HTTPS server bound to one :class:`VaultApp`."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], app: VaultApp, context: ssl.SSLContext) -> None:
        super().__init__(address, _Handler)
        self.app = app
        self.socket = context.wrap_socket(self.socket, server_side=True, do_handshake_on_connect=False)
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def track(self, connection: socket.socket, *, open_: bool) -> None:
        """Remember or forget a live client connection."""
        with self._connections_lock:
            if open_:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def close(self) -> None:
        """Stop serving and cut every open client connection."""
        self.shutdown()
        self.server_close()
        with self._connections_lock:
            connections = list(self._connections)
            self._connections.clear()
        for connection in connections:
            _hard_close(connection)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Failed handshakes and reset connections are expected in tests: log quietly."""
        logger.debug("connection error client=%s", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "KeyVaultTwin/1.0"
    sys_version = ""
    timeout = CONNECTION_TIMEOUT
    server: TwinHTTPServer

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without NODELAY, Nagle plus the
        # client's delayed ACK adds ~40 ms to every response.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.track(self.connection, open_=True)
        if isinstance(self.connection, ssl.SSLSocket):
            self.connection.do_handshake()

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass
        finally:
            self.server.track(self.connection, open_=False)

    def _dispatch(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        response = self.server.app.handle(self.command, self.path, self.headers.get("Authorization"), body)
        if response.drop:
            self.close_connection = True
            _hard_close(self.connection)
            return
        self._send(response)

    do_GET = do_PUT = do_POST = do_PATCH = do_DELETE = _dispatch

    def _send(self, response: Response) -> None:
        payload = b"" if response.body is None else json.dumps(response.body).encode("utf-8")
        self.send_response(response.status)
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Pragma", "no-cache")
        self.send_header("Expires", "-1")
        self.send_header("x-ms-request-id", str(uuid.uuid4()))
        client_request_id = self.headers.get("x-ms-client-request-id")
        if client_request_id:
            self.send_header("x-ms-client-request-id", client_request_id)
        self.send_header("x-ms-keyvault-region", "twin")
        self.send_header("x-ms-keyvault-service-version", SERVICE_VERSION)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Strict-Transport-Security", "max-age=31536000;includeSubDomains")
        for name, value in response.headers.items():
            self.send_header(name, value)
        if response.body is not None:
            self.send_header("Content-Type", "application/json; charset=utf-8")
        if response.status != 204:
            self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if payload:
            self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s " + format, self.address_string(), *args)


def _hard_close(connection: socket.socket) -> None:
    """Close without a TLS close_notify or HTTP response, as a network failure would."""
    try:
        connection.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        connection.close()
    except OSError:
        pass
