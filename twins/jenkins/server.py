"""HTTPS plumbing: a threaded ``http.server`` that turns bytes into a :class:`Request` and back.

HTTP/1.1 with keep-alive, because ``requests``/``urllib3`` pool connections and a server that
closes after every answer would hide connection-reuse bugs (a dropped connection must be
seen on a pooled socket too). TLS handshakes run on the per-connection thread, so one stuck
client cannot stall the accept loop, and open connections are tracked so ``close()`` cuts
pooled clients off instead of serving them after the twin stopped. Request lines are logged
at DEBUG; headers and bodies never are (they carry tokens).
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from twins.jenkins.exchange import Request, Response

logger = logging.getLogger(__name__)

CONNECTION_TIMEOUT = 30.0
MAX_BODY = 1 << 20

Handler = Callable[[Request], Response]


class TwinHTTPServer(ThreadingHTTPServer):
    """Threaded HTTPS server handing every request to one ``handler``."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handler: Handler, context: ssl.SSLContext) -> None:
        super().__init__(address, _RequestHandler)
        self.handler = handler
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
            hard_close(connection)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Failed handshakes and reset connections are expected in tests: log quietly."""
        logger.debug("connection error client=%s", client_address, exc_info=True)


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "JenkinsTwin/1.0"
    sys_version = ""
    timeout = CONNECTION_TIMEOUT
    server: TwinHTTPServer

    def version_string(self) -> str:
        """The ``Server`` header, without the Python version ``http.server`` appends."""
        return self.server_version

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
        if length > MAX_BODY:
            self.send_error(413)
            return
        body = self.rfile.read(length) if length > 0 else b""
        request = Request(self.command, self.path, dict(self.headers.items()), body)
        response = self.server.handler(request)
        if response.drop:
            self.close_connection = True
            hard_close(self.connection)
            return
        self._send(response)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _dispatch

    def _send(self, response: Response) -> None:
        self.send_response(response.status)
        for name, value in response.headers:
            self.send_header(name, value)
        if response.content_type is not None:
            self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if response.body and self.command != "HEAD":
            self.wfile.write(response.body)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s " + format, self.address_string(), *args)


def hard_close(connection: socket.socket) -> None:
    """Close without a TLS close_notify or HTTP response, as a network failure would."""
    try:
        connection.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        connection.close()
    except OSError:
        pass
