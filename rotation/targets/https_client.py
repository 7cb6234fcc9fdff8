"""HTTPS calls to an API-token target (Jenkins, NetBox), verified and never redirected.

One small client on urllib3 (already under azure-core) for every HTTP target kind, so the
rules that protect a token live in one place:

- TLS is always verified, against the operator's ``caBundle`` or the system trust store,
  host name included; the address was checked by :mod:`rotation.urls` when the settings
  were read (``https`` only, no credentials, no query).
- Redirects are never followed: a redirect would resend the ``Authorization`` header to
  wherever the server points. A 3xx is an error naming the status.
- Every call is bounded by the target's connect timeout (connect and each read).
- Transport failures and 5xx are :class:`TransientError` (the engine retries within the
  step's deadline); TLS verification failures are permanent, since retrying cannot fix a
  certificate. Messages hold the method, the path and the status, never a header or a body
  that could carry a token.
"""

from __future__ import annotations

import json
import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import urllib3
from urllib3.exceptions import HTTPError, SSLError

from rotation.errors import SecretNotRotatable, TransientError
from rotation.secret_value import SecretValue


@dataclass(frozen=True)
class Answer:
    """A response: its status, headers and decoded JSON body (``None`` if not JSON)."""

    status: int
    headers: dict[str, str]
    body: Any


class HttpsTarget:
    """Calls below one root URL (``https://host[:port]/context/``) with verified TLS."""

    def __init__(self, root: str, *, ca_bundle: str | None, timeout_seconds: float,
                 what: str) -> None:
        self.root = root.rstrip("/") + "/"
        self._what = what
        context = ssl.create_default_context(cafile=ca_bundle)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        self._pool = urllib3.PoolManager(
            ssl_context=context, retries=False,
            timeout=urllib3.Timeout(connect=timeout_seconds, read=timeout_seconds))

    def call(self, method: str, path: str, *, authorization: SecretValue,
             form: dict[str, str] | None = None, json_body: object = None) -> Answer:
        """``method`` ``root + path`` with the ``Authorization`` header; the answer.

        ``path`` is relative to the root and built from quoted parts by the caller.
        """
        headers = {"Authorization": authorization.reveal(), "Accept": "application/json"}
        body: bytes | None = None
        if form is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            body = urlencode(form).encode()
        elif json_body is not None:
            headers["Content-Type"] = "application/json"
            body = json.dumps(json_body).encode()
        where = f"{method} {self._what} {path.split('?', 1)[0]}"
        try:
            response = self._pool.request(method, self.root + path, body=body, headers=headers,
                                          redirect=False, preload_content=True)
        except SSLError as exc:
            raise SecretNotRotatable(f"{where}: TLS verification failed ({type(exc).__name__}); "
                                     "check the target's caBundle") from None
        except HTTPError as exc:
            raise TransientError(f"{where}: {type(exc).__name__}") from None
        status = response.status
        if status >= 500:
            raise TransientError(f"{where}: HTTP {status}")
        if 300 <= status < 400:
            raise SecretNotRotatable(f"{where}: HTTP {status} redirect, not followed (is the "
                                     "target's address its canonical root URL?)")
        return Answer(status, {k.lower(): v for k, v in response.headers.items()},
                      _json(response.data))


def path_part(text: str) -> str:
    """One path segment, percent-quoted (user ids may hold any character)."""
    return quote(text, safe="")


def _json(data: bytes) -> Any:
    if not data:
        return None
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
