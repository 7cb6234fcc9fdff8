"""``/_twin/...``: the twin's own control surface, for tests in other processes.

Not Jenkins. It lives at the server root, outside any context path, needs no credentials,
is never faulted and never logged, and speaks plain JSON (errors are ``{"error": ...}`` with
400 or 404). Jenkins itself has no API that lists tokens; this one exists only so a test can
see what a client did to the controller.

=======  ==============================  ================================================
method   path                            effect
=======  ==============================  ================================================
GET      /_twin/health                   ``{"status": "ok", "url": <root URL>}``
GET      /_twin/users                    ``[{"id", "fullName", "admin"}]``
POST     /_twin/users                    ``{"id", "fullName"?, "password"?, "admin"?}``
GET      /_twin/users/{id}/tokens        ``[{"tokenUuid", "tokenName", "expirationDate"}]``
                                         (ISO date or null; expired tokens included)
POST     /_twin/users/{id}/tokens        ``{"name"?, "expires"? (ISO date), "legacy"?,
                                         "value"?, "uuid"?}`` -> ``{"tokenUuid",
                                         "tokenName", "tokenValue"}``
GET      /_twin/faults                   armed faults
POST     /_twin/faults                   arm one (fields of :class:`~.faults.Fault`)
DELETE   /_twin/faults                   disarm all -> ``{"cleared": n}``
GET      /_twin/clock                    ``{"now": <ISO>, "today": <ISO date>}``
POST     /_twin/clock                    ``{"advanceSeconds"?, "advanceDays"?}`` -> as GET
GET      /_twin/requests                 the Jenkins request log
=======  ==============================  ================================================
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import asdict
from datetime import date, timedelta
from typing import Any
from urllib.parse import unquote

from twins.jenkins.clock import TwinClock
from twins.jenkins.exchange import Request, Response
from twins.jenkins.faults import Fault, FaultInjector, RequestLog
from twins.jenkins.store import JenkinsStore, TokenInfo, UnknownUserError

PREFIX = "/_twin/"
_JSON = "application/json"


class ControlError(Exception):
    """A control call that cannot be carried out; becomes ``{"error": ...}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class TwinControl:
    """Answers ``/_twin/...`` over the same state the Jenkins surface uses."""

    def __init__(
        self,
        store: JenkinsStore,
        faults: FaultInjector,
        log: RequestLog,
        clock: TwinClock,
        *,
        root_url: Callable[[], str],
    ) -> None:
        self._store = store
        self._faults = faults
        self._log = log
        self._clock = clock
        self._root_url = root_url

    def handle(self, request: Request) -> Response:
        """Answer one control call."""
        parts = [unquote(p) for p in request.path[len(PREFIX) :].rstrip("/").split("/")]
        try:
            return _json(200, self._route(request.method, parts, request.body))
        except ControlError as exc:
            return _json(exc.status, {"error": str(exc)})
        except UnknownUserError as exc:
            return _json(404, {"error": f"no user {exc.args[0]!r}"})
        except ValueError as exc:
            return _json(400, {"error": str(exc)})

    def _route(self, method: str, parts: list[str], body: bytes) -> Any:
        match method, parts:
            case "GET", ["health"]:
                return {"status": "ok", "url": self._root_url()}
            case "GET", ["users"]:
                return [{"id": u.id, "fullName": u.full_name, "admin": u.admin} for u in self._store.users()]
            case "POST", ["users"]:
                user = self._add_user(_object(body))
                return {"id": user.id, "fullName": user.full_name, "admin": user.admin}
            case "GET", ["users", user_id, "tokens"]:
                return [_token_json(t) for t in self._store.tokens(user_id)]
            case "POST", ["users", user_id, "tokens"]:
                return self._add_token(user_id, _object(body))
            case "GET", ["faults"]:
                return [f.to_json() for f in self._faults.pending()]
            case "POST", ["faults"]:
                return self._faults.add(Fault.from_json(_object(body))).to_json()
            case "DELETE", ["faults"]:
                return {"cleared": self._faults.clear()}
            case "GET", ["clock"]:
                return self._clock_json()
            case "POST", ["clock"]:
                return self._advance(_object(body))
            case "GET", ["requests"]:
                return [asdict(r) for r in self._log.snapshot()]
        raise ControlError(404, f"no control endpoint {method} {PREFIX}{'/'.join(parts)}")

    def _add_user(self, body: Mapping[str, Any]) -> Any:
        user_id = _field(body, "id", str, required=True)
        return self._store.add_user(
            user_id,
            full_name=_field(body, "fullName", str),
            password=_field(body, "password", str),
            admin=bool(_field(body, "admin", bool)),
            description=_field(body, "description", str),
        )

    def _add_token(self, user_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        uuid = _field(body, "uuid", str)
        value = _field(body, "value", str)
        if _field(body, "legacy", bool):
            token = self._store.add_legacy(user_id, value, uuid)
        else:
            expires_text = _field(body, "expires", str)
            expires = date.fromisoformat(expires_text) if expires_text else None
            name = _field(body, "name", str) or "twin token"
            if value is None:
                if uuid is not None:
                    raise ValueError("'uuid' needs a fixed 'value'")
                token = self._store.generate(user_id, name, expires)
            else:
                token = self._store.add_fixed(user_id, name, value, expires, uuid)
        return {"tokenUuid": token.info.uuid, "tokenName": token.info.name, "tokenValue": token.value}

    def _advance(self, body: Mapping[str, Any]) -> dict[str, Any]:
        seconds = _field(body, "advanceSeconds", (int, float)) or 0
        days = _field(body, "advanceDays", (int, float)) or 0
        self._clock.advance(timedelta(days=days, seconds=seconds))
        return self._clock_json()

    def _clock_json(self) -> dict[str, Any]:
        now = self._clock.now()
        return {"now": now.isoformat(), "today": now.date().isoformat()}


def _token_json(token: TokenInfo) -> dict[str, Any]:
    expires = token.expires.isoformat() if token.expires else None
    return {"tokenUuid": token.uuid, "tokenName": token.name, "expirationDate": expires}


def _object(body: bytes) -> dict[str, Any]:
    try:
        parsed = json.loads(body.decode("utf-8")) if body.strip() else {}
    except (UnicodeDecodeError, ValueError) as exc:
        raise ControlError(400, "the body is not JSON") from exc
    if not isinstance(parsed, dict):
        raise ControlError(400, "the body must be a JSON object")
    return parsed


def _field(
    body: Mapping[str, Any], name: str, kind: type | tuple[type, ...], *, required: bool = False
) -> Any:
    value = body.get(name)
    if value is None:
        if required:
            raise ControlError(400, f"{name!r} is required")
        return None
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise ControlError(400, f"{name!r} has the wrong type")
    return value


def _json(status: int, body: Any) -> Response:
    return Response(status, json.dumps(body).encode("utf-8"), _JSON)
