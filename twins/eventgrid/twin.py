"""An Event Grid topic over HTTPS that accepts CloudEvents 1.0 as the service documents it.

Two publish endpoints, as Azure serves them:

- a **basic** (custom) topic: ``POST /api/events?api-version=2018-01-01``, CloudEvents sent
  as ``application/cloudevents-batch+json`` (a JSON array) or ``application/cloudevents+json``
  (one event);
- a **namespace** topic: ``POST /topics/{topic}:publish?api-version=2024-06-01``, the same
  content types.

What it checks, and answers as the service does: authentication (an ``Authorization:
Bearer`` token, or ``aeg-sas-key``) or 401; the content type or 400; each event's required
CloudEvents attributes (``id``, ``source``, ``type``, ``specversion`` ``1.0``) and the 1 MB
limit per request or 400/413; a namespace topic it does not hold, 404. Accepted events are
kept in order with the headers that came with them. ``fail_next(status, count)`` answers
the next publishes with an error (503, 429 with ``Retry-After``) to test retries.

Not reproduced: the Event Grid schema on input, custom input schemas, SAS token validation
(any non-empty key or token is accepted), delivery to subscribers, partial batch failures.
"""

from __future__ import annotations

import json
import re
import ssl
import threading
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from twins.http.lifecycle import HTTPSTwin
from twins.http.server import DispatchingHandler, DispatchingServer

MAX_REQUEST_BYTES = 1_048_576  # Event Grid: 1 MB per publish request
BATCH = "application/cloudevents-batch+json"
SINGLE = "application/cloudevents+json"
REQUIRED = ("id", "source", "type", "specversion")
_NAMESPACE_PATH = re.compile(r"^/topics/(?P<topic>[^/:]+):publish$")


@dataclass(frozen=True)
class Published:
    """One accepted CloudEvent, with the request it came in."""

    event: dict[str, Any]
    content_type: str
    authorization: str  # "bearer" or "sas": which scheme, never the secret
    topic: str | None  # the namespace topic, or None for a basic topic


@dataclass(frozen=True)
class _Request:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes

    def header(self, name: str) -> str:
        wanted = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == wanted), "")


@dataclass(frozen=True)
class _Answer:
    status: int
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    drop: bool = False


@dataclass
class _Failures:
    status: int = 0
    count: int = 0
    retry_after: int | None = None


class _Handler(DispatchingHandler[_Answer]):
    server_version = "EventGridTwin/1.0"
    max_body = MAX_REQUEST_BYTES
    request_type = _Request

    def _send(self, answer: _Answer) -> None:
        self.send_response(answer.status)
        for name, value in answer.headers:
            self.send_header(name, value)
        if answer.body:
            self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(answer.body)))
        self.end_headers()
        self.wfile.write(answer.body)


class EventGridTwin(HTTPSTwin):
    """``with EventGridTwin(namespace_topics={"rotations"}) as topic: topic.url ...``"""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, cert_dir: str | Path | None = None,
                 namespace_topics: set[str] | frozenset[str] = frozenset()) -> None:
        super().__init__(host, port, cert_dir, thread_name="eventgrid-twin",
                         cert_prefix="akv-rotator-eventgrid-", organization="akv-rotator Event Grid twin")
        self._topics = frozenset(namespace_topics)
        self._lock = threading.Lock()
        self._published: list[Published] = []
        self._failures = _Failures()
        self.requests = 0

    def _make_server(self, address: tuple[str, int], context: ssl.SSLContext) -> DispatchingServer:
        return DispatchingServer(address, self._route, context, _Handler)

    def _on_bound(self, base_url: str) -> None:
        return None

    @property
    def url(self) -> str:
        """The namespace endpoint (``https://host:port``)."""
        return self._started_url()

    @property
    def topic_endpoint(self) -> str:
        """A basic topic's endpoint, as the portal shows it (``…/api/events``)."""
        return self._started_url() + "/api/events"

    def published(self) -> list[Published]:
        with self._lock:
            return list(self._published)

    def fail_next(self, status: int, count: int = 1, retry_after: int | None = None) -> None:
        with self._lock:
            self._failures = _Failures(status, count, retry_after)

    def _route(self, request: _Request) -> _Answer:
        with self._lock:
            self.requests += 1
            failing = self._failures
            if failing.count > 0:
                failing.count -= 1
                headers = (("Retry-After", str(failing.retry_after)),) if failing.retry_after else ()
                return _error(failing.status, "Injected", "injected failure", headers)
        path = unquote(urlsplit(request.target).path)
        if request.method != "POST":
            return _error(HTTPStatus.METHOD_NOT_ALLOWED, "MethodNotAllowed", "publish is POST")
        topic: str | None = None
        if path != "/api/events":
            found = _NAMESPACE_PATH.match(path)
            if found is None:
                return _error(HTTPStatus.NOT_FOUND, "NotFound", f"no publish endpoint at {path}")
            topic = found["topic"]
            if topic not in self._topics:
                return _error(HTTPStatus.NOT_FOUND, "NotFound", f"topic {topic} does not exist")
        scheme = _authorization(request)
        if scheme is None:
            return _error(HTTPStatus.UNAUTHORIZED, "Unauthorized",
                          "the request carries neither aeg-sas-key, aeg-sas-token nor a bearer token")
        return self._accept(request, scheme, topic)

    def _accept(self, request: _Request, scheme: str, topic: str | None) -> _Answer:
        content_type = request.header("Content-Type").split(";", 1)[0].strip().lower()
        if content_type not in (BATCH, SINGLE):
            return _error(HTTPStatus.BAD_REQUEST, "BadRequest",
                          f"content type {content_type or 'missing'} is not a CloudEvents one")
        try:
            body = json.loads(request.body)
        except ValueError:
            return _error(HTTPStatus.BAD_REQUEST, "BadRequest", "the body is not JSON")
        events = body if content_type == BATCH else [body]
        if not isinstance(events, list) or not events:
            return _error(HTTPStatus.BAD_REQUEST, "BadRequest", "a batch is a non-empty JSON array")
        for index, event in enumerate(events):
            problem = _problem(event)
            if problem:
                return _error(HTTPStatus.BAD_REQUEST, "BadRequest", f"event {index}: {problem}")
        with self._lock:
            self._published.extend(Published(e, content_type, scheme, topic) for e in events)
        return _Answer(HTTPStatus.OK)


def _authorization(request: _Request) -> str | None:
    bearer = request.header("Authorization")
    if bearer.lower().startswith("bearer ") and bearer[7:].strip():
        return "bearer"
    if request.header("aeg-sas-key") or request.header("aeg-sas-token"):
        return "sas"
    return None


def _problem(event: object) -> str | None:
    if not isinstance(event, dict):
        return "is not a JSON object"
    missing = [name for name in REQUIRED if not isinstance(event.get(name), str) or not event[name]]
    if missing:
        return f"required attribute(s) {', '.join(missing)} missing or not strings"
    if event["specversion"] != "1.0":
        return f"specversion {event['specversion']!r} is not 1.0"
    return None


def _error(status: int, code: str, message: str, headers: tuple[tuple[str, str], ...] = ()) -> _Answer:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    return _Answer(int(status), body, headers)


__all__ = ["EventGridTwin", "Published"]
