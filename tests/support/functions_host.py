"""A stand-in for the Azure Functions host's HTTP front, for tests: a ``FunctionApp``'s HTTP
functions over HTTPS on 127.0.0.1 (a throwaway ``trustme`` CA), behind a function key.

As the host does, it indexes ``app.get_functions()``, matches ``/api/<route>`` against each
HTTP trigger's route template (``{name}`` segments) and methods, checks the function key
(``x-functions-key`` header or ``code`` query; else 401 with an empty body), calls the user
function with a real ``azure.functions.HttpRequest`` and writes back status, headers and body.

What the real host does that this does not: the admin auth level, host/master keys and keys
per function (one key opens every function here); route constraints, optional and catch-all
segments (``{id:int}``, ``{id?}``, ``{*rest}``); CORS; App Service authentication and its
``x-ms-client-principal-*`` headers; ``routePrefix``; the function timeout; HTTP/2; and a
separate worker process (functions run on the request thread, in this process).
"""

from __future__ import annotations

import hmac
import logging
import re
import secrets
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple
from urllib.parse import parse_qsl, unquote, urlsplit

import azure.functions as func
from azure.functions.decorators.http import HttpTrigger

from twins.http.lifecycle import HTTPSTwin
from twins.http.server import DispatchingHandler, DispatchingServer

logger = logging.getLogger(__name__)
_SEGMENT = re.compile(r"^\{([A-Za-z_][A-Za-z0-9_]*)\}$")


class Exchange(NamedTuple):  # a request as read off the wire
    method: str
    target: str
    headers: dict[str, str]
    body: bytes


class Answer(NamedTuple):
    status: int
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    drop: bool = False  # never: the host always answers


class Route(NamedTuple):
    name: str
    pattern: re.Pattern[str]
    methods: frozenset[str]
    needs_key: bool
    function: Callable[[func.HttpRequest], func.HttpResponse]


class _Handler(DispatchingHandler[Answer]):
    server_version = "Kestrel"
    max_body = 100 << 20  # the host's default maxRequestBodySize (104857600 bytes)
    request_type = Exchange

    def _send(self, answer: Answer) -> None:
        self.send_response(answer.status)
        for name, value in answer.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(answer.body)))
        self.end_headers()
        self.wfile.write(answer.body)


def index(app: func.FunctionApp) -> list[Route]:
    """The app's HTTP functions as the host routes them."""
    app.functions_bindings = None  # get_functions() refuses to index an app twice otherwise
    routes: list[Route] = []
    for function in app.get_functions():
        trigger, name = function.get_trigger(), function.get_function_name() or ""
        if not isinstance(trigger, HttpTrigger):
            continue
        level = trigger.auth_level or func.AuthLevel.FUNCTION
        if level not in (func.AuthLevel.FUNCTION, func.AuthLevel.ANONYMOUS):
            raise NotImplementedError(f"{name}: auth level {level}")
        parts = [f"(?P<{m.group(1)}>[^/]+)" if (m := _SEGMENT.match(s)) else re.escape(s)
                 for s in (trigger.route or name).strip("/").split("/")]
        methods = frozenset(str(getattr(m, "value", m)).upper() for m in trigger.methods or ())
        routes.append(Route(name, re.compile("/".join(parts), re.IGNORECASE),
                            methods or frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"}),
                            level == func.AuthLevel.FUNCTION, function.get_user_function()))
    return routes


class FunctionsHost(HTTPSTwin):
    """``with FunctionsHost(function_app.app) as host:`` serves it at ``host.url``; clients
    trust ``host.ca_path`` and send ``host.key``."""

    def __init__(self, app: func.FunctionApp, *, key: str | None = None,
                 cert_dir: Path | None = None) -> None:
        super().__init__("127.0.0.1", 0, cert_dir, thread_name="functions-host",
                         cert_prefix="functions-host-", organization="akv-rotator Functions host")
        self.key = key or secrets.token_urlsafe(32)
        self.routes = index(app)

    @property
    def url(self) -> str:
        return self._started_url()

    def _make_server(self, address: tuple[str, int], context: ssl.SSLContext) -> DispatchingServer:
        return DispatchingServer(address, self._serve, context, _Handler)

    def _on_bound(self, base_url: str) -> None:
        return  # self.url asks the listener

    def _serve(self, exchange: Exchange) -> Answer:
        parts = urlsplit(exchange.target)
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        if not parts.path.lower().startswith("/api/"):
            return Answer(404)
        for route in self.routes:
            match = route.pattern.fullmatch(parts.path[len("/api/"):])
            if match is None or exchange.method not in route.methods:
                continue
            headers = {name.lower(): value for name, value in exchange.headers.items()}
            given = headers.get("x-functions-key") or params.get("code") or ""
            if route.needs_key and not hmac.compare_digest(given.encode(), self.key.encode()):
                return Answer(401)
            request = func.HttpRequest(
                method=exchange.method, url=f"{self.url}{exchange.target}", headers=headers,
                params=params, route_params={k: unquote(v) for k, v in match.groupdict().items()},
                body=exchange.body)
            try:
                response = route.function(request)
            except Exception:
                logger.exception("function %s failed", route.name)
                return Answer(500)
            headers = {k.lower(): v for k, v in response.headers.items()}
            if response.mimetype:
                headers.setdefault("content-type", f"{response.mimetype}; charset={response.charset}")
            return Answer(response.status_code, tuple(headers.items()), response.get_body())
        return Answer(404)
