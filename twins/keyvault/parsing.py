"""Request parsing: JSON bodies and headers turned into typed values, or a 400.

Malformed input must come back as a Key Vault ``BadParameter`` error rather than a crash, so
every check a client can fail lives here. The wording of these messages is the twin's (no
capture of the service's own exists for most of them).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from twins.keyvault import errors
from twins.keyvault.faults import Fault


@dataclass(frozen=True)
class SecretFields:
    """Optional properties of a set or update body; ``None`` means "not given"."""

    content_type: str | None
    tags: dict[str, str] | None
    enabled: bool | None
    nbf: int | None
    exp: int | None


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or ``None``."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


def json_object(raw: bytes) -> dict[str, Any]:
    """Decode a JSON object body; an empty body counts as ``{}``."""
    try:
        body = json.loads(raw.decode("utf-8")) if raw.strip() else {}
    except (UnicodeDecodeError, ValueError) as exc:
        raise errors.bad_parameter("The request body is not valid JSON.") from exc
    if not isinstance(body, dict):
        raise errors.bad_parameter("The request body must be a JSON object.")
    return body


def secret_value(body: Mapping[str, Any]) -> str:
    """The mandatory ``value`` of a set (``SecretSetParameters.value`` is required)."""
    value = body.get("value")
    if not isinstance(value, str):
        raise errors.bad_parameter("The secret value is required and must be a string.")
    return value


def secret_fields(body: Mapping[str, Any]) -> SecretFields:
    """``contentType``, ``tags`` and ``attributes`` (enabled, nbf, exp) of a set or update."""
    content_type = body.get("contentType")
    if content_type is not None and not isinstance(content_type, str):
        raise errors.bad_parameter("Property 'contentType' must be a string.")
    tags = body.get("tags")
    if tags is not None and (
        not isinstance(tags, dict) or not all(isinstance(v, str) for v in tags.values())
    ):
        raise errors.bad_parameter("Property 'tags' must map strings to strings.")
    attributes = body.get("attributes") or {}
    if not isinstance(attributes, dict):
        raise errors.bad_parameter("Property 'attributes' must be an object.")
    enabled = attributes.get("enabled")
    if enabled is not None and not isinstance(enabled, bool):
        raise errors.bad_parameter("Property 'enabled' must be a boolean.")
    return SecretFields(
        content_type=content_type,
        tags=tags,
        enabled=enabled,
        nbf=_unix_time(attributes, "nbf"),
        exp=_unix_time(attributes, "exp"),
    )


def _unix_time(attributes: Mapping[str, Any], key: str) -> int | None:
    value = attributes.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise errors.bad_parameter(f"Property '{key}' must be a Unix time in seconds.")
    return int(value)


_FAULT_FIELDS = frozenset(Fault.__dataclass_fields__)


def fault_from_json(body: Mapping[str, Any]) -> Fault:
    """A :class:`Fault` from the admin endpoint's JSON (same field names as ``inject_fault``)."""
    unknown = set(body) - _FAULT_FIELDS
    if unknown:
        raise errors.bad_parameter(f"Unknown fault fields: {', '.join(sorted(unknown))}.")
    try:
        return Fault(**body)
    except (TypeError, ValueError) as exc:
        raise errors.bad_parameter(str(exc)) from exc
