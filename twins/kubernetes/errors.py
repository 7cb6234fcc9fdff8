"""API errors as the API server sends them: ``Status`` objects with the apimachinery wording.

Clients branch on ``reason`` and ``code`` (the ``kubernetes`` client raises ``ApiException``
whose ``status`` is the code and whose ``body`` is this JSON), and people read ``message``, so
each factory reproduces ``k8s.io/apimachinery/pkg/api/errors/errors.go``: ``NewNotFound``,
``NewAlreadyExists``, ``NewConflict``, ``NewInvalid``, ``NewForbidden``, ``NewUnauthorized``,
``NewBadRequest``, ``NewMethodNotSupported``, ``NewInternalError``. See
https://kubernetes.io/docs/reference/kubernetes-api/common-definitions/status/ for the shape.

Field errors (:class:`FieldError`) follow ``k8s.io/apimachinery/pkg/util/validation/field``:
their ``reason`` is the ``FieldValue...`` cause type and their text is what ``ErrorList``
prints (``spec.refreshPolicy: Unsupported value: "Bad": supported values: "A", "B"``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from twins.kubernetes.kinds import Obj, ResourceType

CONFLICT_MESSAGE = (
    "the object has been modified; please apply your changes to the latest version and try again"
)


class ApiError(Exception):
    """A failed request: HTTP ``code``, ``reason``, ``message`` and ``details`` of its Status."""

    def __init__(self, code: int, reason: str, message: str, details: Obj | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def status(self) -> Obj:
        """The ``Status`` object sent as the response body."""
        body: Obj = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
        }
        if self.reason:
            body["reason"] = self.reason
        if self.details is not None:
            body["details"] = self.details
        body["code"] = self.code
        return body

    def __repr__(self) -> str:
        return f"ApiError(code={self.code}, reason={self.reason!r}, message={self.message!r})"


def _details(resource_type: ResourceType, name: str, kind: str | None = None) -> Obj:
    details: Obj = {"name": name} if name else {}
    if resource_type.group:
        details["group"] = resource_type.group
    details["kind"] = kind or resource_type.plural
    return details


def _named(resource_type: ResourceType, name: str) -> str:
    return f'{resource_type.group_resource} "{name}"' if name else resource_type.group_resource


def not_found(resource_type: ResourceType, name: str) -> ApiError:
    """404: ``externalsecrets.external-secrets.io "x" not found``."""
    return ApiError(
        404, "NotFound", f"{_named(resource_type, name)} not found", _details(resource_type, name)
    )


def namespace_not_found(namespace: str) -> ApiError:
    """404 for a write into a namespace that does not exist (the NamespaceLifecycle admission)."""
    return ApiError(
        404, "NotFound", f'namespaces "{namespace}" not found', {"name": namespace, "kind": "namespaces"}
    )


def unknown_path() -> ApiError:
    """404 for a path that names no served resource."""
    return ApiError(404, "NotFound", "the server could not find the requested resource", {})


def already_exists(resource_type: ResourceType, name: str) -> ApiError:
    """409 AlreadyExists on create."""
    return ApiError(
        409, "AlreadyExists", f"{_named(resource_type, name)} already exists", _details(resource_type, name)
    )


def conflict(resource_type: ResourceType, name: str, why: str = CONFLICT_MESSAGE) -> ApiError:
    """409 Conflict: a stale ``resourceVersion`` or a failed precondition."""
    return ApiError(
        409,
        "Conflict",
        f"Operation cannot be fulfilled on {_named(resource_type, name)}: {why}",
        _details(resource_type, name),
    )


@dataclass(frozen=True)
class FieldError:
    """One ``field.Error``: cause ``reason``, JSON-ish ``field`` path, and what is wrong."""

    reason: str
    field: str
    summary: str

    def __str__(self) -> str:
        return f"{self.field}: {self.summary}" if self.field else self.summary

    def cause(self) -> Obj:
        """The ``StatusCause`` entry in ``details.causes``."""
        return {"reason": self.reason, "message": self.summary, "field": self.field}


def show(value: Any) -> str:
    """A value as Go's ``%#v``-ish rendering in field errors: strings quoted, the rest as JSON."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def required(path: str, detail: str = "") -> FieldError:
    """``path: Required value`` (with ``: detail`` when given)."""
    return FieldError("FieldValueRequired", path, "Required value" + (f": {detail}" if detail else ""))


def not_supported(path: str, value: Any, supported: list[Any]) -> FieldError:
    """``path: Unsupported value: "Bad": supported values: "A", "B"``."""
    allowed = ", ".join(show(v) for v in supported)
    return FieldError(
        "FieldValueNotSupported", path, f"Unsupported value: {show(value)}: supported values: {allowed}"
    )


def invalid(path: str, value: Any, detail: str) -> FieldError:
    """``path: Invalid value: <value>: detail``."""
    return FieldError("FieldValueInvalid", path, f"Invalid value: {show(value)}: {detail}")


def type_invalid(path: str, actual: str, expected: str) -> FieldError:
    """A schema type mismatch, worded as kube-openapi's validator words it."""
    return FieldError(
        "FieldValueTypeInvalid",
        path,
        f"Invalid value: {show(actual)}: {path} in body must be of type {expected}: {show(actual)}",
    )


def too_long(path: str, limit: int) -> FieldError:
    """``path: Too long: may not be more than N bytes``."""
    return FieldError("FieldValueTooLong", path, f"Too long: may not be more than {limit} bytes")


def too_many(path: str, actual: int, limit: int) -> FieldError:
    """``path: Too many: 3: must have at most 2 items``."""
    return FieldError("FieldValueTooMany", path, f"Too many: {actual}: must have at most {limit} items")


def duplicate(path: str, value: Any) -> FieldError:
    """``path: Duplicate value: <value>``."""
    return FieldError("FieldValueDuplicate", path, f"Duplicate value: {show(value)}")


def forbidden_field(path: str, detail: str) -> FieldError:
    """``path: Forbidden: detail``."""
    return FieldError("FieldValueForbidden", path, f"Forbidden: {detail}")


@dataclass
class Invalid(Exception):
    """Raised by validation with every field error found; :func:`invalid_object` renders it."""

    errors: list[FieldError] = field(default_factory=list)


def invalid_object(resource_type: ResourceType, name: str, errors: list[FieldError]) -> ApiError:
    """422: ``ExternalSecret.external-secrets.io "x" is invalid: spec.y: ...`` (``[a, b]`` for several)."""
    listed = str(errors[0]) if len(errors) == 1 else "[" + ", ".join(str(e) for e in errors) + "]"
    details = _details(resource_type, name, kind=resource_type.kind)
    details["causes"] = [e.cause() for e in errors]
    return ApiError(422, "Invalid", f'{resource_type.group_kind} "{name}" is invalid: {listed}', details)


def forbidden(resource_type_name: str, group: str, name: str, why: str) -> ApiError:
    """403: ``<resource>.<group> "name" is forbidden: <why>`` (``NewForbidden``)."""
    qualified = f"{resource_type_name}.{group}" if group else resource_type_name
    subject = f'{qualified} "{name}"' if name else qualified
    details: Obj = {"name": name} if name else {}
    if group:
        details["group"] = group
    details["kind"] = resource_type_name
    return ApiError(403, "Forbidden", f"{subject} is forbidden: {why}", details)


def unauthorized() -> ApiError:
    """401 for a request without a valid bearer token (anonymous auth is off)."""
    return ApiError(401, "Unauthorized", "Unauthorized")


def bad_request(message: str) -> ApiError:
    """400 BadRequest."""
    return ApiError(400, "BadRequest", message)


def method_not_allowed() -> ApiError:
    """405 MethodNotAllowed, as for POST to a named object or PUT to a collection."""
    return ApiError(
        405, "MethodNotAllowed", "the server does not allow this method on the requested resource", {}
    )


def unsupported_media_type(content_type: str, accepted: list[str]) -> ApiError:
    """415 for a PATCH whose content type the resource does not accept."""
    return ApiError(
        415,
        "UnsupportedMediaType",
        "the body of the request was in an unknown format - accepted media types include: "
        + ", ".join(accepted),
        {},
    )


def internal(message: str) -> ApiError:
    """500 InternalError."""
    return ApiError(
        500, "InternalError", f"Internal error occurred: {message}", {"causes": [{"message": message}]}
    )


FAULT_REASONS: dict[int, tuple[str, str]] = {
    400: ("BadRequest", "the request was rejected by the twin's fault injection"),
    401: ("Unauthorized", "Unauthorized"),
    403: ("Forbidden", "forbidden by the twin's fault injection"),
    404: ("NotFound", "the server could not find the requested resource"),
    409: ("Conflict", f"Operation cannot be fulfilled: {CONFLICT_MESSAGE}"),
    410: ("Expired", "The provided continue parameter is too old to display a consistent list result."),
    429: ("TooManyRequests", "Too many requests, please try again later."),
    500: ("InternalError", "Internal error occurred: injected by the twin"),
    503: ("ServiceUnavailable", "The server is currently unable to handle the request"),
    504: ("Timeout", "Timeout: request did not complete within the allotted timeout"),
}
"""Reason and message of an injected fault's Status by code (the apimachinery wording)."""
