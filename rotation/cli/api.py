"""The CLI's API mode: a deployed app's HTTP API, with a function key (``--api URL``).

The key comes from ``AKV_ROTATOR_FUNCTION_KEY`` only (never an argument: arguments end up
in shell history and process lists) and is sent as ``x-functions-key``. It is a credential,
so the URL must be https with a verified certificate (``REQUESTS_CA_BUNDLE`` names a private
CA); plain http is refused except on loopback, where ``func start`` serves it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlsplit

import requests

from rotation.cli.context import StepListener
from rotation.cli.exits import CliError, Exit
from rotation.inventory import Progress
from rotation.urls import is_loopback

KEY_VARIABLE = "AKV_ROTATOR_FUNCTION_KEY"
_TIMEOUT = (10.0, 600.0)  # connect, read: a rotation answers when its synchronous part is done


class ApiBackend:
    """Talks to ``{base}/api/...``; every answer is the API's JSON."""

    mode = "api"

    def __init__(self, base_url: str, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        parts = urlsplit(base_url)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise CliError(f"--api {base_url!r} is not an https:// URL", Exit.USAGE)
        if parts.scheme == "http" and not is_loopback(base_url):
            raise CliError(f"--api {base_url!r}: the function key is a credential and is only sent "
                           "over https (plain http only to a local `func start` on loopback)",
                           Exit.USAGE)
        key = env.get(KEY_VARIABLE, "")
        if not key:
            raise CliError(f"--api needs the function key in {KEY_VARIABLE}", Exit.USAGE)
        self._base = base_url.rstrip("/")
        if self._base.endswith("/api"):
            self._base = self._base[:-4]
        self._session = requests.Session()
        self._session.headers["x-functions-key"] = key
        self._session.trust_env = True  # REQUESTS_CA_BUNDLE; proxies as the operator set them

    def plan(self, vault: str | None, secret: str,
             tags: Mapping[str, str] | None = None) -> dict[str, Any]:
        if tags is not None:
            raise CliError("onboarding writes with your own identity: run it without --api",
                           Exit.USAGE)
        return self._call("POST", f"secrets/{_name(secret)}/rotate", vault, dryRun="true")

    def due(self, vault: str | None, days: float) -> list[tuple[str, str]]:
        rows = self.status(vault)["secrets"]
        return [(row["vault"], row["secret"]) for row in rows if row.get("enabled", True)
                and (row.get("expiresInDays") is None or row["expiresInDays"] <= days)]

    def status(self, vault: str | None, progress: Progress | None = None) -> dict[str, Any]:
        return self._call("GET", "secrets", vault)

    def rotate(self, vault: str | None, secret: str, reason: str | None,
               listener: StepListener | None = None) -> dict[str, Any]:
        body = {"reason": reason} if reason else None
        return self._call("POST", f"secrets/{_name(secret)}/rotate", vault, json_body=body)

    def history(self, vault: str | None, secret: str, limit: int) -> list[dict[str, Any]]:
        answer = self._call("GET", f"secrets/{_name(secret)}/rotations", vault, limit=str(limit))
        rotations: list[dict[str, Any]] = answer["rotations"]
        return rotations

    def show(self, rotation_id: str) -> dict[str, Any]:
        return self._call("GET", f"rotations/{_name(rotation_id)}", None)

    def advance(self, rotation_id: str, listener: StepListener | None = None) -> dict[str, Any]:
        """The deployed sweeper carries a rotation on; here we only look again."""
        return self.show(rotation_id)

    def _call(self, method: str, route: str, vault: str | None, *,
              json_body: dict[str, Any] | None = None, **params: str) -> dict[str, Any]:
        if vault:
            params["vault"] = vault
        try:
            answer = self._session.request(method, f"{self._base}/api/{route}", params=params,
                                           json=json_body, timeout=_TIMEOUT)
        except requests.exceptions.SSLError:
            raise CliError(f"{self._base}: TLS verification failed (set REQUESTS_CA_BUNDLE for a "
                           "private CA)") from None
        except requests.RequestException as exc:
            raise CliError(f"{self._base}: {type(exc).__name__}") from None
        try:
            body = answer.json()
        except ValueError:
            body = None
        if answer.status_code == 200 and isinstance(body, dict):
            return body
        error = body.get("error") if isinstance(body, dict) else None
        message = error.get("message") if isinstance(error, dict) else None
        code = Exit.USAGE if answer.status_code == 400 else Exit.FAILED
        if answer.status_code in (401, 403) and message is None:
            message = "the function key was refused"
        raise CliError(f"{method} /api/{route}: HTTP {answer.status_code}"
                       + (f": {message}" if message else ""), code)


def _name(text: str) -> str:
    return quote(text, safe="")
