"""HTTPS for Jenkins: the shared :mod:`twins.http.server` turning bytes into a :class:`Request` and back.

Jenkins answers more methods than the vault (``HEAD``, ``OPTIONS``), refuses bodies over a
megabyte with 413 (a twin need not buffer more), and its ``Server`` header carries no Python
version. Connection handling (keep-alive, TLS on the connection's own thread, cutting pooled
clients at close) lives in the shared server.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable

from twins.http.server import DispatchingHandler, DispatchingServer
from twins.jenkins.exchange import Request, Response

MAX_BODY = 1 << 20

Handler = Callable[[Request], Response]


class _RequestHandler(DispatchingHandler[Response]):
    server_version = "JenkinsTwin/1.0"
    max_body = MAX_BODY
    request_type = Request

    do_HEAD = do_OPTIONS = DispatchingHandler.dispatch

    def _send(self, answer: Response) -> None:
        self.send_response(answer.status)
        for name, value in answer.headers:
            self.send_header(name, value)
        if answer.content_type is not None:
            self.send_header("Content-Type", answer.content_type)
        self.send_header("Content-Length", str(len(answer.body)))
        self.end_headers()
        if answer.body and self.command != "HEAD":
            self.wfile.write(answer.body)


class TwinHTTPServer(DispatchingServer):
    """Threaded HTTPS server handing every request to one ``handler``."""

    def __init__(self, address: tuple[str, int], handler: Handler, context: ssl.SSLContext) -> None:
        super().__init__(address, handler, context, _RequestHandler)
