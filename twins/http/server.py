"""A threaded ``http.server`` over TLS that reads a request, lets the twin answer, and writes back.

HTTP/1.1 with keep-alive, because the clients under test (the Azure SDK's ``requests``
transport, ``requests``/``urllib3``) pool connections, and a server that closed after every
answer would hide connection-reuse bugs: a dropped connection must be seen on a pooled socket
too. TLS handshakes run on the per-connection thread (``do_handshake_on_connect=False``), so
one slow or broken client cannot stall the accept loop. Open connections are tracked so
``close()`` really cuts off pooled clients instead of serving them after the twin stopped.

A twin subclasses :class:`HTTPSRequestHandler` with how to answer a body (``_answer``) and how
to write that answer (``_send``); an answer whose ``drop`` is set closes the connection without
a response, as a network failure would. Request lines are logged at DEBUG; headers and bodies
never are (they carry tokens and secrets).
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Generic, Protocol, TypeVar

logger = logging.getLogger(__name__)

CONNECTION_TIMEOUT = 30.0


class Droppable(Protocol):
    """An answer that may say "no answer": ``drop`` cuts the connection instead of responding."""

    @property
    def drop(self) -> bool: ...


AnswerT = TypeVar("AnswerT", bound=Droppable)


class HTTPSServer(ThreadingHTTPServer):
    """Threaded HTTPS server that can cut every open client connection when it closes."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        handler_class: type[HTTPSRequestHandler[Any]],
        context: ssl.SSLContext,
    ) -> None:
        super().__init__(address, handler_class)
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


class HTTPSRequestHandler(BaseHTTPRequestHandler, ABC, Generic[AnswerT]):
    """One connection's requests: read the body, ask the twin, send the answer or cut the line.

    ``max_body`` (bytes) answers a longer declared body with 413 without reading it; ``None``
    sets no limit. The methods a twin serves are the ``do_*`` attributes bound to
    :meth:`dispatch`; any other method gets ``http.server``'s 501.
    """

    protocol_version = "HTTP/1.1"
    sys_version = ""
    timeout = CONNECTION_TIMEOUT
    max_body: int | None = None
    server: HTTPSServer

    @abstractmethod
    def _answer(self, body: bytes) -> AnswerT:
        """The twin's answer to the request line and headers already read, and ``body``."""

    @abstractmethod
    def _send(self, answer: AnswerT) -> None:
        """Write ``answer`` (never a dropped one) as status, headers and body."""

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

    def dispatch(self) -> None:
        """Serve one request: the ``do_*`` methods all land here."""
        length = int(self.headers.get("Content-Length") or 0)
        if self.max_body is not None and length > self.max_body:
            self.send_error(413)
            return
        body = self.rfile.read(length) if length > 0 else b""
        answer = self._answer(body)
        if answer.drop:
            self.close_connection = True
            hard_close(self.connection)
            return
        self._send(answer)

    do_GET = do_PUT = do_POST = do_PATCH = do_DELETE = dispatch

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s " + format, self.address_string(), *args)


class DispatchingHandler(HTTPSRequestHandler[AnswerT]):
    """A handler that builds the twin's request object and hands it to the server's callable.

    A twin sets ``server_version`` (its whole ``Server`` header: ``http.server`` would append
    the Python version), ``request_type`` (``(method, target, headers, body) -> request``)
    and ``max_body``, and writes answers with its own ``_send``.
    """

    request_type: Callable[[str, str, dict[str, str], bytes], Any]
    server: DispatchingServer

    def version_string(self) -> str:
        return self.server_version

    def _answer(self, body: bytes) -> AnswerT:
        request = self.request_type(self.command, self.path, dict(self.headers.items()), body)
        answer: AnswerT = self.server.handler(request)
        return answer


class DispatchingServer(HTTPSServer):
    """Threaded HTTPS server handing every request to one ``handler`` callable."""

    def __init__(self, address: tuple[str, int], handler: Callable[[Any], Any],
                 context: ssl.SSLContext, handler_class: type[DispatchingHandler[Any]]) -> None:
        super().__init__(address, handler_class, context)
        self.handler = handler


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
