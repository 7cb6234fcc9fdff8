"""Request handling independent of the socket: auth challenge, faults, routing, admin API.

:class:`VaultApp` takes a parsed request and returns a :class:`Response`; the HTTP plumbing in
:mod:`twins.keyvault.server` only reads bytes and writes them back. Order of checks for the
vault API, chosen so the SDK's flow is reproduced:

1. no accepted bearer token -> 401 with the ``WWW-Authenticate`` challenge (the SDK's first,
   bodiless probe always lands here; answering it with 200 would make ``set_secret`` return a
   secret without a value, local-components.md section 7);
2. an armed fault matching the request -> its error, or a dropped connection;
3. over a service limit (when limits are on, :mod:`twins.keyvault.limits`) -> 429
   ``Throttled``, the operation not carried out; otherwise the request counts against its
   class's quota, whatever its outcome below;
4. missing ``api-version`` -> 400 (the parameter is mandatory, there is no default);
5. the operation itself.

A fault armed ``after_processing`` replaces whatever 3-5 answered, a 429 included.

``/_twin/...`` is the unauthenticated admin API for tests in other processes; it is not
recorded in the request log, which shows vault traffic only, and never throttled.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from twins.http.faults import DROP_CONNECTION, fault_answers
from twins.keyvault import errors, events, parsing, wire
from twins.keyvault.errors import VaultError
from twins.keyvault.events import EventDispatcher
from twins.keyvault.faults import Fault, FaultInjector, RecordedRequest, RequestLog
from twins.keyvault.limits import Limiter, classify
from twins.keyvault.store import SecretVersion, VaultStore

logger = logging.getLogger(__name__)

ADMIN_PREFIX = "/_twin/"
RESOURCE = "https://vault.azure.net"
AUTHORITY = "https://login.microsoftonline.com"


@dataclass
class Response:
    """What to send back: status, JSON body (``None`` for no body), extra headers.

    ``drop`` means close the connection without any response (injected network failure).
    """

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False


def error_response(error: VaultError, headers: Mapping[str, str] | None = None) -> Response:
    """Render a :class:`VaultError` as Key Vault does."""
    return Response(error.status, error.body(), dict(headers or {}))


@dataclass(frozen=True)
class VaultConfig:
    """Identity of the vault the app serves."""

    vault_name: str
    topic: str
    tenant_id: str
    accepted_tokens: frozenset[str] | None = None


@dataclass
class _Request:
    method: str
    path: str
    parts: list[str]
    query: dict[str, str]
    body: bytes


class VaultApp:
    """The Key Vault secrets API and the twin's admin API over one store."""

    def __init__(
        self,
        config: VaultConfig,
        store: VaultStore,
        dispatcher: EventDispatcher,
        faults: FaultInjector,
        log: RequestLog,
        *,
        limiter: Limiter | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.dispatcher = dispatcher
        self.faults = faults
        self.log = log
        self.limiter = limiter if limiter is not None else Limiter(None)
        self.base_url = ""
        self._routes: dict[tuple[str, str], Callable[[_Request], Response]] = {
            ("GET", "list"): self._list_secrets,
            ("PUT", "secret"): self._set_secret,
            ("GET", "secret"): self._get_secret,
            ("PATCH", "secret"): self._update_secret,
            ("DELETE", "secret"): self._delete_secret,
            ("GET", "version"): self._get_secret,
            ("PATCH", "version"): self._update_secret,
            ("GET", "versions"): self._list_versions,
            ("GET", "deleted-list"): self._list_deleted,
            ("GET", "deleted"): self._get_deleted,
            ("DELETE", "deleted"): self._purge,
            ("POST", "recover"): self._recover,
        }

    # -- entry point ------------------------------------------------------------------

    def handle(self, method: str, target: str, authorization: str | None, body: bytes) -> Response:
        """Answer one request; never raises for anything a client can send."""
        split = urlsplit(target)
        query = {k: v[0] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        request = _Request(
            method.upper(), split.path, [unquote(p) for p in split.path[1:].split("/")], query, body
        )
        if split.path.startswith(ADMIN_PREFIX):
            return self._admin(request)
        try:
            authenticated, response = self._vault(request, authorization)
        except Exception:
            # A twin bug must still look like a service failure to the client, not a hang-up.
            logger.exception("twin failed method=%s path=%s", request.method, request.path)
            authenticated = True
            response = error_response(
                VaultError(500, "InternalServerError", "The Key Vault twin failed; see its log.")
            )
        self.log.append(
            RecordedRequest(
                method=request.method,
                path=request.path,
                query=dict(query),
                authenticated=authenticated,
                status=0 if response.drop else response.status,
            )
        )
        return response

    def emit(self, secret_name: str, event_type: str) -> events.Event:
        """Publish an event for the secret's current version and return it.

        Raises :class:`VaultError` 404 if the secret does not exist (or is deleted) and
        ``ValueError`` for an event type other than the three secret events.
        """
        if event_type not in events.SECRET_EVENT_TYPES:
            raise ValueError(f"unsupported event type {event_type!r}")
        return self._publish(event_type, self.store.find_version(secret_name))

    def _publish(self, event_type: str, version: SecretVersion) -> events.Event:
        """Hand the event about ``version`` to the dispatcher (it delivers off the request thread)."""
        event = events.build_secret_event(
            event_type=event_type,
            topic=self.config.topic,
            vault_url=self.base_url,
            vault_name=self.config.vault_name,
            secret_name=version.name,
            version=version.version,
            nbf=version.nbf,
            exp=version.exp,
        )
        self.dispatcher.publish(event)
        return event

    # -- vault API --------------------------------------------------------------------

    def _vault(self, request: _Request, authorization: str | None) -> tuple[bool, Response]:
        token = parsing.bearer_token(authorization)
        if token is None:
            return False, self._challenge(errors.unauthorized_missing_token())
        accepted = self.config.accepted_tokens
        if accepted is not None and token not in accepted:
            return False, self._challenge(errors.unauthorized_bad_token())
        fault = self.faults.take(request.method, request.path)
        if fault is not None and fault_answers(fault, processed=False):
            return True, _fault_response(fault)
        refusal = self.limiter.admit(classify(request.method, _route_kind(request.parts)))
        if refusal is None:
            response = self._operation(request)
        else:
            logger.debug("throttled method=%s path=%s", request.method, request.path)
            headers = {} if refusal.retry_after is None else {"Retry-After": str(refusal.retry_after)}
            response = error_response(errors.throttled(), headers)
        if fault is not None and fault_answers(fault, processed=True):
            return True, _fault_response(fault)
        return True, response

    def _operation(self, request: _Request) -> Response:
        if not request.query.get("api-version"):
            return error_response(errors.bad_parameter("The 'api-version' query parameter is required."))
        route = self._routes.get((request.method, _route_kind(request.parts)))
        if route is None:
            return error_response(errors.not_implemented(request.method, request.path))
        try:
            return route(request)
        except VaultError as exc:
            return error_response(exc)

    def _challenge(self, error: VaultError) -> Response:
        challenge = f'Bearer authorization="{AUTHORITY}/{self.config.tenant_id}", resource="{RESOURCE}"'
        return error_response(error, {"WWW-Authenticate": challenge})

    def _set_secret(self, request: _Request) -> Response:
        body = parsing.json_object(request.body)
        fields = parsing.secret_fields(body)
        version = self.store.set_secret(
            request.parts[1],
            parsing.secret_value(body),
            content_type=fields.content_type,
            tags=fields.tags,
            enabled=fields.enabled,
            nbf=fields.nbf,
            exp=fields.exp,
        )
        self._publish(events.NEW_VERSION_CREATED, version)
        return Response(200, wire.secret_bundle(self.base_url, version, with_value=True))

    def _get_secret(self, request: _Request) -> Response:
        version = self.store.get_secret(request.parts[1], _version_part(request.parts))
        return Response(200, wire.secret_bundle(self.base_url, version, with_value=True))

    def _update_secret(self, request: _Request) -> Response:
        fields = parsing.secret_fields(parsing.json_object(request.body))
        version = self.store.update_secret(
            request.parts[1],
            _version_part(request.parts),
            content_type=fields.content_type,
            tags=fields.tags,
            enabled=fields.enabled,
            nbf=fields.nbf,
            exp=fields.exp,
        )
        return Response(200, wire.secret_bundle(self.base_url, version, with_value=False))

    def _delete_secret(self, request: _Request) -> Response:
        deleted = self.store.delete_secret(request.parts[1])
        return Response(200, wire.deleted_bundle(self.base_url, deleted))

    def _list_secrets(self, request: _Request) -> Response:
        limit, marker = _paging(request.query)
        page = self.store.list_secrets(marker, limit)
        items = [wire.secret_item(self.base_url, v, with_version=False) for v in page.items]
        return self._listing(request, items, page.next_marker)

    def _list_versions(self, request: _Request) -> Response:
        limit, marker = _paging(request.query)
        page = self.store.list_versions(request.parts[1], marker, limit)
        items = [wire.secret_item(self.base_url, v, with_version=True) for v in page.items]
        return self._listing(request, items, page.next_marker)

    def _list_deleted(self, request: _Request) -> Response:
        limit, marker = _paging(request.query)
        page = self.store.list_deleted(marker, limit)
        items = [wire.deleted_item(self.base_url, d) for d in page.items]
        return self._listing(request, items, page.next_marker)

    def _get_deleted(self, request: _Request) -> Response:
        deleted = self.store.get_deleted(request.parts[1])
        return Response(200, wire.deleted_bundle(self.base_url, deleted))

    def _purge(self, request: _Request) -> Response:
        self.store.purge(request.parts[1])
        return Response(204)

    def _recover(self, request: _Request) -> Response:
        version = self.store.recover(request.parts[1])
        return Response(200, wire.secret_bundle(self.base_url, version, with_value=False))

    def _listing(self, request: _Request, items: list[dict[str, Any]], marker: str | None) -> Response:
        link = wire.next_link(
            self.base_url,
            request.path,
            request.query["api-version"],
            marker,
            request.query.get("maxresults"),
        )
        return Response(200, wire.list_result(items, link))

    # -- admin API --------------------------------------------------------------------

    def _admin(self, request: _Request) -> Response:
        action = request.path[len(ADMIN_PREFIX) :].rstrip("/")
        try:
            if (request.method, action) == ("GET", "health"):
                return Response(
                    200, {"status": "ok", "vaultName": self.config.vault_name, "url": self.base_url}
                )
            if (request.method, action) == ("POST", "faults"):
                fault = parsing.fault_from_json(parsing.json_object(request.body))
                self.faults.add(fault)
                return Response(200, fault.to_json())
            if (request.method, action) == ("GET", "faults"):
                return Response(200, [f.to_json() for f in self.faults.pending()])
            if (request.method, action) == ("DELETE", "faults"):
                return Response(200, {"cleared": self.faults.clear()})
            if (request.method, action) == ("POST", "events"):
                return Response(200, self._admin_emit(parsing.json_object(request.body)))
            if (request.method, action) == ("GET", "events"):
                return Response(200, self.dispatcher.emitted)
            if (request.method, action) == ("GET", "requests"):
                return Response(200, [asdict(r) for r in self.log.snapshot()])
            if (request.method, action) == ("GET", "limits"):
                return Response(200, self.limiter.to_json())
            if (request.method, action) == ("DELETE", "limits"):
                self.limiter.reset()
                return Response(200, self.limiter.to_json())
        except VaultError as exc:
            return error_response(exc)
        return error_response(errors.not_implemented(request.method, request.path))

    def _admin_emit(self, body: Mapping[str, Any]) -> events.Event:
        secret, event_type = body.get("secret"), body.get("eventType")
        if not isinstance(secret, str) or not isinstance(event_type, str):
            raise errors.bad_parameter("Both 'secret' and 'eventType' are required strings.")
        try:
            return self.emit(secret, event_type)
        except ValueError as exc:
            raise errors.bad_parameter(str(exc)) from exc


def _fault_response(fault: Fault) -> Response:
    if fault.status == DROP_CONNECTION:
        return Response(0, drop=True)
    return error_response(fault.error(), fault.headers())


# -- routing helpers ------------------------------------------------------------------


def _route_kind(parts: list[str]) -> str:
    """Classify a path (already split on ``/``, so a trailing slash leaves a ``""``)."""
    root, rest = parts[0], parts[1:]
    if root == "secrets":
        if rest in ([], [""]):
            return "list"
        if len(rest) == 1 or (len(rest) == 2 and rest[1] == ""):
            return "secret"  # GET /secrets/{name}/ is "latest", as the SDK sends it
        if len(rest) == 2:
            return "versions" if rest[1] == "versions" else "version"
    if root == "deletedsecrets":
        if rest in ([], [""]):
            return "deleted-list"
        if len(rest) == 1 or (len(rest) == 2 and rest[1] == ""):
            return "deleted"
        if len(rest) == 2 and rest[1] == "recover":
            return "recover"
    return "unknown"


def _version_part(parts: list[str]) -> str | None:
    return parts[2] if len(parts) > 2 and parts[2] else None


def _paging(query: Mapping[str, str]) -> tuple[int, str | None]:
    limit = wire.parse_maxresults(query.get("maxresults"))
    token = query.get("$skiptoken")
    return limit, wire.decode_skiptoken(token) if token else None
