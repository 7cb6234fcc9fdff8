"""HTTPS for the vault: the shared :mod:`twins.http.server` answering through :class:`VaultApp`.

Every response carries Key Vault's usual headers (``Content-Type: application/json;
charset=utf-8``, ``Cache-Control: no-cache``, ``x-ms-request-id``, the echoed
``x-ms-client-request-id``), because the SDK reads some of them and a client under test should
see what the real service sends. Connection handling (keep-alive, TLS on the connection's own
thread, cutting pooled clients at close) lives in the shared server.
"""

from __future__ import annotations

import json
import ssl
import uuid

from twins.http.server import HTTPSRequestHandler, HTTPSServer
from twins.keyvault.routes import Response, VaultApp

SERVICE_VERSION = "1.9.0.0-twin"


class TwinHTTPServer(HTTPSServer):
    """Threaded HTTPS server bound to one :class:`VaultApp`."""

    def __init__(self, address: tuple[str, int], app: VaultApp, context: ssl.SSLContext) -> None:
        super().__init__(address, _Handler, context)
        self.app = app


class _Handler(HTTPSRequestHandler[Response]):
    server_version = "KeyVaultTwin/1.0"
    server: TwinHTTPServer

    def _answer(self, body: bytes) -> Response:
        return self.server.app.handle(self.command, self.path, self.headers.get("Authorization"), body)

    def _send(self, answer: Response) -> None:
        payload = b"" if answer.body is None else json.dumps(answer.body).encode("utf-8")
        self.send_response(answer.status)
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
        for name, value in answer.headers.items():
            self.send_header(name, value)
        if answer.body is not None:
            self.send_header("Content-Type", "application/json; charset=utf-8")
        if answer.status != 204:
            self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if payload:
            self.wfile.write(payload)
