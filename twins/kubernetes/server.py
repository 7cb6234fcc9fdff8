"""HTTPS for the API server: the shared :mod:`twins.http.server` turning bytes into a Request and back.

Answers are JSON with the headers the API server sends on every response (``Audit-Id``,
``Cache-Control: no-cache, private``) plus any ``Warning`` headers of the answer. Bodies over
3 MiB are refused with 413, as the API server's request size limit does. Connection handling
(keep-alive, TLS on the connection's own thread, cutting pooled clients at close) lives in
the shared server.
"""

from __future__ import annotations

import json
import ssl
import uuid
from collections.abc import Callable

from twins.http.server import DispatchingHandler, DispatchingServer
from twins.kubernetes.exchange import Request, Response

MAX_BODY = 3 * 1024 * 1024

Handler = Callable[[Request], Response]


class _RequestHandler(DispatchingHandler[Response]):
    server_version = "KubernetesTwin/1.0"
    max_body = MAX_BODY
    request_type = Request

    do_HEAD = DispatchingHandler.dispatch

    def _send(self, answer: Response) -> None:
        if isinstance(answer.body, str):
            payload, content_type = answer.body.encode("utf-8"), "text/plain; charset=utf-8"
        else:
            payload, content_type = json.dumps(answer.body).encode("utf-8"), "application/json"
        self.send_response(answer.status)
        self.send_header("Audit-Id", str(uuid.uuid4()))
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("Content-Type", content_type)
        for name, value in answer.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)


class TwinHTTPServer(DispatchingServer):
    """Threaded HTTPS server handing every request to one ``handler``."""

    def __init__(self, address: tuple[str, int], handler: Handler, context: ssl.SSLContext) -> None:
        super().__init__(address, handler, context, _RequestHandler)
