"""HTTP in: operator requests, mapped onto status codes with messages that say what was wrong.

========================================  ======
outcome                                   status
========================================  ======
rotated                                   200
InvalidRequest (bad name, body, vault)    400
BindingRefused (operator's allowlists)    403
SecretNotFound                            404
SecretNotRotatable, ConcurrentRotation    409
ConfigurationError                        500
AccessDenied, VerificationFailed, other   502
TransientError                            503 (+ Retry-After)
========================================  ======

Bodies are JSON. No response ever carries a secret value: results hold ids and versions only.

Every input is bounded and checked before it is used: the body's size before it is parsed,
query values by exact patterns, header values by length and character set. The caller's
identity comes from App Service authentication's ``x-ms-client-principal-*`` headers only
when ``ROTATOR_TRUST_APP_SERVICE_AUTH`` says that authentication is on (it strips forged
copies); otherwise the caller is recorded as ``function-key``.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import azure.functions as func
import structlog

from handlers.observability import configure_logging
from handlers.services import ServicesProvider
from rotation.binding import SECRET_NAME
from rotation.errors import (
    BindingRefused,
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
from rotation.inventory import inventory
from rotation.journal.model import public_view
from rotation.service import RotationTrigger
from rotation.settings import Settings

logger = logging.getLogger(__name__)

_ALLOWED_BODY_KEYS = frozenset({"reason"})
_MAX_REASON = 200
_MAX_BODY_BYTES = 1024  # {"reason": <200 characters>} with room for escapes
_MAX_HEADER_CHARS = 256
_MAX_QUERY_CHARS = 64
_CALLER_HEADERS = ("x-ms-client-principal-name", "x-ms-client-principal-id")
_ROTATION_ID = re.compile(r"^[0-9a-f]{32}$")
_LIMIT = re.compile(r"^[0-9]{1,3}$")  # ASCII digits only: str.isdigit() also takes '²'
_MAX_LIMIT = 200


Handler = Callable[[func.HttpRequest, ServicesProvider], func.HttpResponse]


def _answered(handler: Handler) -> Handler:
    """The last line of defence: an unexpected error answers 500 with no detail and is
    logged by type only (a library's message might quote its input)."""

    @functools.wraps(handler)
    def wrapper(req: func.HttpRequest, services: ServicesProvider) -> func.HttpResponse:
        try:
            return handler(req, services)
        except Exception as exc:
            logger.error("request failed unexpectedly", extra={"status": 500,
                                                               "error": type(exc).__name__})
            return _json(500, {"error": {"code": "InternalError",
                                         "message": "unexpected error; see the logs"}})

    return wrapper


@_answered
def rotate_secret(req: func.HttpRequest, services: ServicesProvider) -> func.HttpResponse:
    """``POST /api/secrets/{name}/rotate[?vault=NAME][&dryRun=true]``: rotate now and report
    the versions; with ``dryRun=true``, the plan of that rotation instead, changing nothing."""
    configure_logging()
    name = req.route_params.get("name", "")
    with structlog.contextvars.bound_contextvars(secret=_loggable_name(name), http_route="rotate"):
        try:
            secret = _secret_name(name)
            reason = _reason(req)
            dry_run = _flag(req, "dryRun")
            built = services()
            vault = _vault(req, built.settings)
            if dry_run:
                plan = built.preflight.plan(vault, secret)
                logger.info("rotation planned over HTTP", extra={"outcome": plan.verdict})
                return _json(200, plan.public())
            trigger = RotationTrigger("http", _caller(req, reason, built.settings))
            record = built.rotation.request_rotation(vault, secret, trigger)
        except RotatorError as exc:
            return _error_response(exc)
        logger.info("rotation requested over HTTP finished",
                    extra={"outcome": record.status, "rotation_id": record.rotation_id})
        return _json(200, public_view(record))


@_answered
def list_secrets(req: func.HttpRequest, services: ServicesProvider) -> func.HttpResponse:
    """``GET /api/secrets[?vault=NAME]``: every opted-in secret's state (all vaults when no
    vault is named): binding, current version's age and expiry, last and open rotations."""
    configure_logging()
    try:
        built = services()
        requested = (req.params.get("vault") or "").strip()
        names = [_vault(req, built.settings)] if requested else [v.name for v in built.settings.vaults]
        rows = inventory(built.settings, built.vaults, built.journal, names)
    except RotatorError as exc:
        return _error_response(exc)
    now = datetime.now(UTC)
    return _json(200, {"generatedAt": now.isoformat(timespec="seconds"), "vaults": names,
                       "secrets": [row.public(now) for row in rows]})


@_answered
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
                       "rotations": [public_view(record, brief=True) for record in records]})


@_answered
def get_rotation(req: func.HttpRequest, services: ServicesProvider) -> func.HttpResponse:
    """``GET /api/rotations/{id}``: one rotation's steps, timings, outcome and trigger."""
    configure_logging()
    rotation_id = req.route_params.get("id", "")
    try:
        if not _ROTATION_ID.fullmatch(rotation_id):
            raise InvalidRequest(f"{_shown(rotation_id)} is not a rotation id (32 hex characters)")
        record = services().journal.get(rotation_id)
        if record is None:
            raise SecretNotFound(f"no rotation {rotation_id}")
    except RotatorError as exc:
        return _error_response(exc)
    return _json(200, public_view(record))


def _flag(req: func.HttpRequest, name: str) -> bool:
    raw = (req.params.get(name) or "").strip().lower()
    if raw in ("", "false"):
        return False
    if raw == "true":
        return True
    raise InvalidRequest(f"{name!r} must be true or false, not {_shown(raw)}")


def _limit(raw: str | None) -> int:
    if raw is None or not raw.strip():
        return 20
    if not _LIMIT.match(raw.strip()) or not 1 <= int(raw.strip()) <= _MAX_LIMIT:
        raise InvalidRequest(f"'limit' must be a whole number from 1 to {_MAX_LIMIT}")
    return int(raw.strip())


def _secret_name(name: str) -> SecretName:
    if not SECRET_NAME.fullmatch(name):
        raise InvalidRequest(
            f"{_shown(name)} is not a Key Vault secret name: 1-127 letters, digits and '-'"
        )
    return SecretName(name)


def _loggable_name(name: str) -> str:
    """The route's name for the log context: as it is when it is a secret name, else quoted
    and cut short (a route parameter can be as long as the URL, and every log line of the
    request carries its context)."""
    return name if SECRET_NAME.fullmatch(name) else _shown(name)


def _shown(text: str) -> str:
    """A caller's value quoted for an error message, cut short."""
    return repr(text[:_MAX_QUERY_CHARS] + ("…" if len(text) > _MAX_QUERY_CHARS else ""))


def _reason(req: func.HttpRequest) -> str | None:
    raw = req.get_body()
    if not raw or not raw.strip():
        return None
    if len(raw) > _MAX_BODY_BYTES:
        raise InvalidRequest(f"the request body is larger than {_MAX_BODY_BYTES} bytes")
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise InvalidRequest("the request body must be a JSON object (or empty)") from None
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object (or empty)")
    unknown = sorted(set(body) - _ALLOWED_BODY_KEYS)
    if unknown:
        raise InvalidRequest(f"unknown fields in the body: {', '.join(unknown)} (allowed: reason)")
    reason = body.get("reason")
    if reason is not None and not _plain_text(reason, _MAX_REASON):
        raise InvalidRequest(f"'reason' must be a string of at most {_MAX_REASON} printable "
                             "characters")
    return reason


def _plain_text(value: object, limit: int) -> bool:
    """Printable text of at most ``limit`` characters that UTF-8 can encode (no surrogates)."""
    if not isinstance(value, str) or len(value) > limit or not value.isprintable():
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _vault(req: func.HttpRequest, settings: Settings) -> VaultName:
    requested = (req.params.get("vault") or "").strip()
    if len(requested) > _MAX_QUERY_CHARS:
        raise InvalidRequest(f"'vault' is longer than {_MAX_QUERY_CHARS} characters")
    names = [vault.name for vault in settings.vaults]
    if not requested:
        if len(names) == 1:
            return names[0]
        raise InvalidRequest(f"several vaults are configured; add ?vault= one of {', '.join(names)}")
    vault = settings.vault(requested)
    if vault is None:
        raise InvalidRequest(f"vault {_shown(requested)} is not configured "
                             f"(known: {', '.join(names)})")
    return vault.name


def _caller(req: func.HttpRequest, reason: str | None, settings: Settings) -> str:
    """Who asked, for the audit trail: App Service authentication's principal when the
    operator says it is on (it strips forged headers), else the function key."""
    caller = "function-key"
    if settings.trust_app_service_auth:
        for header in _CALLER_HEADERS:
            value = req.headers.get(header)
            if value:
                if not _plain_text(value, _MAX_HEADER_CHARS):
                    raise InvalidRequest(f"header {header} must be at most {_MAX_HEADER_CHARS} "
                                         "printable characters")
                caller = value
                break
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
    if isinstance(exc, BindingRefused):
        return 403, {}
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
