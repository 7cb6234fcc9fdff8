"""The API server's request path: faults, authentication, request info, RBAC, then the verb.

Order of the handler chain (``k8s.io/apiserver/pkg/server/config.go``, ``DefaultBuildHandlerChain``):

1. an armed fault (before processing) -> its Status, a dropped connection, or a delay;
2. authentication: no or unknown bearer token -> 401 (anonymous auth off);
3. request info from the path (``k8s.io/apiserver/pkg/endpoints/request/requestinfo.go``):
   ``/api/v1/...`` or ``/apis/{group}/{version}/...``, ``namespaces/{ns}/{resource}/{name}/{sub}``;
   everything else (discovery, ``/version``) is a non-resource request, open to any
   authenticated caller;
4. authorization: RBAC on verb, group, resource(/subresource), namespace, name -> 403. It
   runs before routing, so a caller without rights gets 403 even for what does not exist;
5. routing to the resource: 404 for an unknown resource or scope, 405 for a method the
   endpoint does not take, then get / list / create / update / patch / delete /
   deletecollection on :class:`~twins.kubernetes.store.ObjectStore`.

Query parameters honoured: ``labelSelector``, ``fieldSelector``, ``limit``, ``continue``,
``dryRun=All``, ``fieldValidation`` (Strict / Warn / Ignore). Accepted and ignored:
``pretty``, ``fieldManager``, ``timeoutSeconds``, ``resourceVersion`` / ``resourceVersionMatch``
on reads (always the latest state), ``propagationPolicy``, ``gracePeriodSeconds``. ``watch``
is refused with 405: the twin has no watch streams (in-process code subscribes to the store).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twins.http.faults import DROP_CONNECTION, fault_answers
from twins.kubernetes import discovery, errors, patch
from twins.kubernetes.errors import ApiError
from twins.kubernetes.exchange import Request, Response
from twins.kubernetes.faults import Fault, FaultInjector, RecordedRequest, RequestLog
from twins.kubernetes.kinds import Obj, Registry, ResourceType
from twins.kubernetes.rbac import Attributes, Authenticator, Identity, authorize
from twins.kubernetes.selectors import FieldGetter, parse_field_selector, parse_label_selector, path_getter
from twins.kubernetes.store import ListQuery, ObjectStore, WriteResult

logger = logging.getLogger(__name__)

NAMESPACE_SUBRESOURCES = frozenset({"status", "finalize"})
FIELD_VALIDATION = frozenset({"Strict", "Warn", "Ignore"})
HEALTH_PATHS = frozenset({"/healthz", "/livez", "/readyz"})


@dataclass(frozen=True)
class RequestInfo:
    """What the path and method say: ``RequestInfo`` of the apiserver."""

    is_resource: bool
    verb: str
    group: str = ""
    version: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""

    def attributes(self) -> Attributes:
        """The RBAC attributes of this request."""
        return Attributes(self.verb, self.group, self.resource, self.subresource, self.namespace, self.name)


def request_info(method: str, path: str, query: dict[str, str]) -> RequestInfo:
    """Parse a request as ``RequestInfoFactory.NewRequestInfo`` does."""
    parts = [p for p in path.strip("/").split("/") if p]
    http_verb = "get" if method == "HEAD" else method.lower()
    if parts[:1] == ["api"] and len(parts) >= 3:
        group, version, rest = "", parts[1], parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 4:
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return RequestInfo(False, http_verb)
    namespace = ""
    if rest[0] == "namespaces" and len(rest) > 1:
        namespace = rest[1]
        if len(rest) > 2 and rest[2] not in NAMESPACE_SUBRESOURCES:
            rest = rest[2:]
    resource = rest[0]
    name = rest[1] if len(rest) > 1 else ""
    subresource = rest[2] if len(rest) > 2 else ""
    verb = {"post": "create", "put": "update", "patch": "patch", "get": "get", "delete": "delete"}.get(
        http_verb, http_verb
    )
    if not name and verb == "get":
        verb = "watch" if query.get("watch") in ("true", "1") else "list"
    elif not name and verb == "delete":
        verb = "deletecollection"
    return RequestInfo(True, verb, group, version, resource, subresource, namespace, name)


class KubeApp:
    """Answers API requests for one store; ``base_url`` (``https://host:port``) is set once bound."""

    def __init__(
        self,
        registry: Registry,
        store: ObjectStore,
        authenticator: Authenticator,
        faults: FaultInjector,
        log: RequestLog,
    ) -> None:
        self.registry = registry
        self.store = store
        self.authenticator = authenticator
        self.faults = faults
        self.log = log
        self.base_url = ""

    def handle(self, request: Request) -> Response:
        """Answer one request; never raises for anything a client can send."""
        fault = self.faults.take(request.method, request.path)
        if fault is not None and fault_answers(fault, processed=False):
            return self._record(request, None, "", _fault_response(fault))
        identity: Identity | None = None
        verb = ""
        try:
            identity = self.authenticator.authenticate(request.header("Authorization"))
            info = request_info(request.method, request.path, request.query)
            verb = info.verb
            response = (
                self._serve(request, info, identity) if info.is_resource else self._non_resource(request)
            )
            if info.is_resource and response.status < 300:
                logger.debug("served verb=%s resource=%s name=%s", info.verb, info.resource, info.name)
        except ApiError as error:
            response = _error_response(error)
        except Exception:
            # A twin bug must still look like a server failure to the client, not a hang-up.
            logger.exception("twin failed method=%s path=%s", request.method, request.path)
            response = _error_response(errors.internal("the Kubernetes twin failed; see its log"))
        if fault is not None and fault_answers(fault, processed=True):
            response = _fault_response(fault)
        return self._record(request, identity, verb, response)

    # -- non-resource requests ------------------------------------------------------------

    def _non_resource(self, request: Request) -> Response:
        if request.method not in ("GET", "HEAD"):
            raise errors.method_not_allowed()
        path = "/" + request.path.strip("/")
        parts = path.strip("/").split("/")
        body: Obj | None = None
        if path == "/version":
            body = dict(discovery.KUBERNETES_VERSION)
        elif path in HEALTH_PATHS:
            return Response(200, "ok")
        elif path == "/api":
            body = discovery.core_versions(self.base_url.removeprefix("https://"))
        elif path == "/apis":
            body = discovery.group_list(self.registry)
        elif parts[0] == "api" and len(parts) == 2:
            body = discovery.resource_list(self.registry, "", parts[1])
        elif parts[0] == "apis" and len(parts) == 2:
            body = discovery.group(self.registry, parts[1])
        elif parts[0] == "apis" and len(parts) == 3:
            body = discovery.resource_list(self.registry, parts[1], parts[2])
        if body is None:
            raise errors.unknown_path()
        return Response(200, body)

    # -- resource requests ----------------------------------------------------------------

    def _serve(self, request: Request, info: RequestInfo, identity: Identity) -> Response:
        authorize(identity, info.attributes())
        resource_type = self.registry.lookup(info.group, info.version, info.resource)
        if resource_type is None:
            raise errors.unknown_path()
        namespace = info.namespace
        if resource_type.kind == "Namespace":
            namespace = ""
        elif resource_type.namespaced and not namespace and info.name:
            raise errors.unknown_path()  # /apis/g/v/externalsecrets/x: no such route
        elif resource_type.namespaced and not namespace and info.verb not in ("list", "watch"):
            raise errors.method_not_allowed()  # the all-namespaces route only lists
        elif not resource_type.namespaced and namespace:
            raise errors.unknown_path()
        if info.subresource and info.subresource not in resource_type.subresources:
            raise errors.unknown_path()
        if info.subresource and info.verb not in ("get", "update", "patch"):
            raise errors.method_not_allowed()
        if info.verb not in resource_type.verbs and info.verb != "watch":
            raise errors.method_not_allowed()
        call = _Call(request, info, resource_type, namespace)
        handlers: dict[str, Callable[[_Call], Response]] = {
            "get": self._get,
            "list": self._list,
            "watch": _refuse_watch,
            "create": self._create,
            "update": self._update,
            "patch": self._patch,
            "delete": self._delete,
            "deletecollection": self._delete_collection,
        }
        if info.verb == "create" and info.name:
            raise errors.method_not_allowed()
        if info.verb in ("update", "patch") and not info.name:
            raise errors.method_not_allowed()
        return handlers[info.verb](call)

    def _get(self, call: _Call) -> Response:
        return Response(200, self.store.get(call.type, call.info.version, call.namespace, call.info.name))

    def _list(self, call: _Call) -> Response:
        query = self._list_query(call)
        namespace = call.namespace if call.type.namespaced and call.namespace else None
        page = self.store.list_page(call.type, call.info.version, namespace, query)
        metadata: Obj = {"resourceVersion": page.resource_version}
        if page.continue_token:
            metadata["continue"] = page.continue_token
        if page.remaining is not None:
            metadata["remainingItemCount"] = page.remaining
        body = {
            "kind": call.type.list_kind,
            "apiVersion": call.type.api_version(call.info.version),
            "metadata": metadata,
            "items": page.items,
        }
        return Response(200, body)

    def _list_query(self, call: _Call) -> ListQuery:
        query = call.request.query
        limit_text = query.get("limit", "") or "0"
        try:
            limit = int(limit_text)
        except ValueError:
            raise errors.bad_request(f"limit: invalid value {limit_text!r}: must be an integer") from None
        if limit < 0:
            raise errors.bad_request(f"limit: invalid value {limit}: must not be negative")
        supported: dict[str, FieldGetter] = {
            "metadata.name": path_getter("metadata.name"),
            "metadata.namespace": path_getter("metadata.namespace"),
        }
        if call.type.kind == "Secret":
            supported["type"] = path_getter("type")
        for json_path in self.store.validator.selectable_fields(call.type, call.info.version):
            supported[json_path.lstrip(".")] = path_getter(json_path)
        return ListQuery(
            labels=tuple(parse_label_selector(query.get("labelSelector"))),
            fields=tuple(
                parse_field_selector(query.get("fieldSelector"), supported, custom=call.type.custom)
            ),
            limit=limit,
            continue_token=query.get("continue", ""),
        )

    def _create(self, call: _Call) -> Response:
        body = _object_body(call)
        result = self.store.create(
            call.type, call.info.version, call.namespace, body, **_write_options(call.request)
        )
        return _written(201, result)

    def _update(self, call: _Call) -> Response:
        body = _object_body(call)
        result = self.store.update(
            call.type,
            call.info.version,
            call.namespace,
            call.info.name,
            body,
            subresource=call.info.subresource or None,
            **_write_options(call.request),
        )
        return _written(200, result)

    def _patch(self, call: _Call) -> Response:
        apply = _patcher(call.type, call.request)
        result = self.store.patch(
            call.type,
            call.info.version,
            call.namespace,
            call.info.name,
            apply,
            subresource=call.info.subresource or None,
            **_write_options(call.request),
        )
        return _written(200, result)

    def _delete(self, call: _Call) -> Response:
        options = _json_body(call.request) if call.request.body.strip() else {}
        if not isinstance(options, dict):
            raise errors.bad_request("the body of a DELETE must be DeleteOptions (a JSON object)")
        dry_run = _dry_run(call.request) or "All" in (options.get("dryRun") or [])
        result = self.store.delete(
            call.type,
            call.info.version,
            call.namespace,
            call.info.name,
            preconditions=options.get("preconditions") or None,
            dry_run=dry_run,
        )
        if result.deleted and not call.type.returns_deleted_object:
            return Response(200, _success(call.type, result.obj))
        return Response(200, result.obj)

    def _delete_collection(self, call: _Call) -> Response:
        query = self._list_query(call)
        namespace = call.namespace if call.type.namespaced and call.namespace else None
        page = self.store.list_page(call.type, call.info.version, namespace, query)
        deleted = []
        for item in page.items:
            metadata = item["metadata"]
            try:
                result = self.store.delete(
                    call.type,
                    call.info.version,
                    metadata.get("namespace", ""),
                    metadata["name"],
                    dry_run=_dry_run(call.request),
                )
            except ApiError as error:
                if error.code != 404:  # deleted meanwhile: as good as deleted by us
                    raise
                continue
            deleted.append(result.obj)
        if not call.type.custom:
            return Response(200, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"})
        body = {
            "kind": call.type.list_kind,
            "apiVersion": call.type.api_version(call.info.version),
            "metadata": {"resourceVersion": self.store.resource_version},
            "items": deleted,
        }
        return Response(200, body)

    # -- log ------------------------------------------------------------------------------

    def _record(self, request: Request, identity: Identity | None, verb: str, response: Response) -> Response:
        self.log.append(
            RecordedRequest(
                method=request.method,
                path=request.path,
                query=dict(request.query),
                user=identity.name if identity is not None else None,
                verb=verb,
                content_type=request.content_type if request.body else "",
                status=0 if response.drop else response.status,
            )
        )
        return response


@dataclass(frozen=True)
class _Call:
    request: Request
    info: RequestInfo
    type: ResourceType
    namespace: str


def _refuse_watch(call: _Call) -> Response:
    raise errors.ApiError(
        405,
        "MethodNotAllowed",
        "the Kubernetes twin does not serve watch requests; "
        "in-process code can subscribe with KubernetesTwin.watch()",
        {},
    )


def _json_body(request: Request) -> Any:
    if request.content_type and "json" not in request.content_type:
        raise errors.unsupported_media_type(request.content_type, ["application/json"])
    try:
        return json.loads(request.body or b"null")
    except ValueError as exc:
        raise errors.bad_request(f"the body of the request could not be decoded as JSON: {exc}") from exc


def _object_body(call: _Call) -> Obj:
    """The object of a POST or PUT, its ``apiVersion``/``kind`` checked against the endpoint."""
    body = _json_body(call.request)
    if not isinstance(body, dict):
        raise errors.bad_request("the body of the request must be a JSON object")
    expected_version = call.type.api_version(call.info.version)
    api_version, kind = body.get("apiVersion"), body.get("kind")
    if call.type.custom:
        for name, value in (("Kind", kind), ("apiVersion", api_version)):
            if not value:
                raise errors.bad_request(
                    f"Object '{name}' is missing in '{json.dumps(body, separators=(',', ':'))}'"
                )
    if api_version and api_version != expected_version:
        raise errors.bad_request(
            f"the API version in the data ({api_version}) does not match "
            f"the expected API version ({expected_version})"
        )
    if kind and kind != call.type.kind:
        raise errors.bad_request(
            f"{kind} in version {call.info.version!r} cannot be handled as a {call.type.kind}"
        )
    return body


def _dry_run(request: Request) -> bool:
    value = request.query.get("dryRun", "")
    if value not in ("", "All"):
        raise errors.bad_request(f'dryRun: Unsupported value: "{value}": supported values: "All"')
    return value == "All"


def _write_options(request: Request) -> dict[str, Any]:
    field_validation = request.query.get("fieldValidation") or "Warn"
    if field_validation not in FIELD_VALIDATION:
        raise errors.bad_request(
            f'fieldValidation: Unsupported value: "{field_validation}": '
            'supported values: "Ignore", "Strict", "Warn"'
        )
    return {"dry_run": _dry_run(request), "field_validation": field_validation}


def _patcher(resource_type: ResourceType, request: Request) -> Callable[[Obj], Obj]:
    content_type = request.content_type
    accepted = [patch.JSON_PATCH, patch.MERGE_PATCH, patch.APPLY_PATCH]
    if not resource_type.custom:
        accepted.insert(2, patch.STRATEGIC_MERGE_PATCH)
    if content_type not in accepted or content_type == patch.APPLY_PATCH:
        raise errors.unsupported_media_type(content_type, [a for a in accepted if a != patch.APPLY_PATCH])
    try:
        body = json.loads(request.body or b"null")
    except ValueError as exc:
        raise errors.bad_request(f"the body of the request could not be decoded as JSON: {exc}") from exc
    if content_type == patch.JSON_PATCH:
        return lambda current: patch.json_patch(current, body)
    if not isinstance(body, dict):
        raise errors.bad_request("a merge patch must be a JSON object")
    if content_type == patch.STRATEGIC_MERGE_PATCH:
        return lambda current: patch.strategic_merge_patch(current, body)
    return lambda current: patch.merge_patch(current, body)


def _written(status: int, result: WriteResult) -> Response:
    headers = [("Warning", warning_header(warning)) for warning in result.warnings]
    return Response(status, result.obj, headers)


def warning_header(text: str) -> str:
    """``Warning: 299 - "<text>"``, the text as an RFC 7230 quoted-string (``NewWarningHeader``)."""
    quoted = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'299 - "{quoted}"'


def _success(resource_type: ResourceType, obj: Obj) -> Obj:
    details: Obj = {"name": obj["metadata"]["name"]}
    if resource_type.group:
        details["group"] = resource_type.group
    details["kind"] = resource_type.plural
    details["uid"] = obj["metadata"].get("uid", "")
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}


def _error_response(error: ApiError) -> Response:
    return Response(error.code, error.status())


def _fault_response(fault: Fault) -> Response:
    if fault.status == DROP_CONNECTION:
        return Response(0, drop=True)
    return Response(fault.status, fault.error().status(), fault.headers())
