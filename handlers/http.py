"""HTTP in: operator requests, mapped onto status codes with messages that say what was wrong.

========================================  ======
outcome                                   status
========================================  ======
rotated                                   200
InvalidRequest (bad name, body, vault)    400
SecretNotFound                            404
SecretNotRotatable, ConcurrentRotation    409
ConfigurationError                        500
AccessDenied, VerificationFailed, other   502
TransientError                            503 (+ Retry-After)
========================================  ======

Bodies are JSON. No response ever carries a secret value: results hold ids and versions only.
"""

from __future__ import annotations

import json
import logging
import math
import re
from typing import Any

import azure.functions as func
import structlog

from handlers.observability import configure_logging
from handlers.services import ServicesProvider
from rotation.binding import SECRET_NAME
from rotation.errors import (
    ConcurrentRotation,
    ConfigurationError,
    InvalidRequest,
    PermanentError,
    RotatorError,
    SecretNotFound,
    SecretNotRotatable,
    TransientError,
)
from rotation.ids import SecretName, VaultName
from rotation.journal.model import public_view
from rotation.service import RotationTrigger
from rotation.settings import Settings

logger = logging.getLogger(__name__)

_ALLOWED_BODY_KEYS = frozenset({"reason"})
_MAX_REASON = 200
_CALLER_HEADERS = ("x-ms-client-principal-name", "x-ms-client-principal-id")
_ROTATION_ID = re.compile(r"^[0-9a-f]{32}$")
_MAX_LIMIT = 200


def rotate_secret(req: func.HttpRequest, services: ServicesProvider) -> func.HttpResponse:
    """``POST /api/secrets/{name}/rotate[?vault=NAME]``: rotate now and report the versions."""
    configure_logging()
    name = req.route_params.get("name", "")
    with structlog.contextvars.bound_contextvars(secret=name, http_route="rotate"):
        try:
            secret = _secret_name(name)
            reason = _reason(req)
            built = services()
            vault = _vault(req, built.settings)
            trigger = RotationTrigger("http", _caller(req, reason))
            record = built.rotation.request_rotation(vault, secret, trigger)
        except RotatorError as exc:
            return _error_response(exc)
        logger.info("rotation requested over HTTP finished",
                    extra={"outcome": record.status, "rotation_id": record.rotation_id})
        return _json(200, public_view(record))


def list_rotations(req: func.HttpRequest, services: ServicesProvider) -> func.HttpResponse:
    """``GET /api/secrets/{name}/rotations[?vault=NAME&limit=N]``: newest first."""
    configure_logging()
    try:
        secret = _secret_name(req.route_params.get("name", ""))
        limit = _limit(req.params.get("limit"))
        built = services()
        vault = _vault(req, built.settings)
        records = built.journal.for_secret(vault, secret, limit=limit)
    except RotatorError as exc:
        return _error_response(exc)
    return _json(200, {"vault": vault, "secret": secret,
                       "rotations": [public_view(record) for record in records]})


def get_rotation(req: func.HttpRequest, services: ServicesProvider) -> func.HttpResponse:
    """``GET /api/rotations/{id}``: one rotation's steps, timings, outcome and trigger."""
    configure_logging()
    rotation_id = req.route_params.get("id", "")
    try:
        if not _ROTATION_ID.match(rotation_id):
            raise InvalidRequest(f"{rotation_id!r} is not a rotation id (32 hex characters)")
        record = services().journal.get(rotation_id)
        if record is None:
            raise SecretNotFound(f"no rotation {rotation_id}")
    except RotatorError as exc:
        return _error_response(exc)
    return _json(200, public_view(record))


def _limit(raw: str | None) -> int:
    if raw is None or not raw.strip():
        return 20
    if not raw.strip().isdigit() or not 1 <= int(raw) <= _MAX_LIMIT:
        raise InvalidRequest(f"'limit' must be a whole number from 1 to {_MAX_LIMIT}")
    return int(raw)


def _secret_name(name: str) -> SecretName:
    if not SECRET_NAME.match(name):
        raise InvalidRequest(
            f"{name!r} is not a Key Vault secret name: 1-127 letters, digits and '-'"
        )
    return SecretName(name)


def _reason(req: func.HttpRequest) -> str | None:
    raw = req.get_body()
    if not raw or not raw.strip():
        return None
    try:
        body = json.loads(raw)
    except ValueError:
        raise InvalidRequest("the request body must be a JSON object (or empty)") from None
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object (or empty)")
    unknown = sorted(set(body) - _ALLOWED_BODY_KEYS)
    if unknown:
        raise InvalidRequest(f"unknown fields in the body: {', '.join(unknown)} (allowed: reason)")
    reason = body.get("reason")
    if reason is not None and (not isinstance(reason, str) or len(reason) > _MAX_REASON):
        raise InvalidRequest(f"'reason' must be a string of at most {_MAX_REASON} characters")
    return reason


def _vault(req: func.HttpRequest, settings: Settings) -> VaultName:
    requested = (req.params.get("vault") or "").strip()
    names = [vault.name for vault in settings.vaults]
    if not requested:
        if len(names) == 1:
            return names[0]
        raise InvalidRequest(f"several vaults are configured; add ?vault= one of {', '.join(names)}")
    vault = settings.vault(requested)
    if vault is None:
        raise InvalidRequest(f"vault {requested!r} is not configured (known: {', '.join(names)})")
    return vault.name


def _caller(req: func.HttpRequest, reason: str | None) -> str:
    caller = next((req.headers[h] for h in _CALLER_HEADERS if req.headers.get(h)), "function-key")
    return f"{caller}: {reason}" if reason else caller


def _error_response(exc: RotatorError) -> func.HttpResponse:
    status, headers = _status_for(exc)
    body: dict[str, Any] = {"error": {"code": type(exc).__name__, "message": str(exc)}}
    if exc.rotation_id:
        body["error"]["rotationId"] = exc.rotation_id
    level = logging.WARNING if status < 500 else logging.ERROR
    logger.log(level, "request failed", extra={"status": status, "error": type(exc).__name__,
                                               "detail": str(exc)})
    return _json(status, body, headers)


def _status_for(exc: RotatorError) -> tuple[int, dict[str, str]]:
    if isinstance(exc, TransientError):
        retry = exc.retry_after if exc.retry_after else 30
        return 503, {"Retry-After": str(max(1, math.ceil(retry)))}
    if isinstance(exc, InvalidRequest):
        return 400, {}
    if isinstance(exc, SecretNotFound):
        return 404, {}
    if isinstance(exc, (SecretNotRotatable, ConcurrentRotation)):
        return 409, {}
    if isinstance(exc, ConfigurationError):
        return 500, {}
    if isinstance(exc, PermanentError):
        return 502, {}
    return 500, {}


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> func.HttpResponse:
    return func.HttpResponse(
        json.dumps(body), status_code=status, mimetype="application/json", headers=headers or {}
    )
