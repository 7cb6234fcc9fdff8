"""Who is calling: HTTP Basic with an API token or a password, and CSRF crumbs.

Authentication follows ``core/src/main/java/jenkins/security/BasicHeaderProcessor.java``
(jenkinsci/jenkins @ff9430ee):

- only an ``Authorization`` header whose scheme is ``Basic`` (any case) is looked at; any other
  header, or none, leaves the request anonymous;
- the credentials are ``base64(<user id>:<secret>)``; undecodable base64 or no ``:`` is a
  failure, as is an unknown user;
- the secret is tried as an API token of that user (``BasicHeaderApiTokenAuthenticator`` via
  ``BasicApiTokenHelper``: tokens of other users never count), then as the real password
  (``BasicHeaderRealPasswordAuthenticator``);
- a failure is :data:`BAD_CREDENTIALS`, answered 401 before any page is reached, so a bad
  token never falls back to anonymous.

Crumbs follow ``hudson/security/csrf/CrumbFilter.java`` and ``DefaultCrumbIssuer.java``: a
POST needs a crumb unless it was authenticated by an API token (``ApiCrumbExclusion``); the
crumb is SHA-256 over ``<name>;<session id>`` and a salt, so it is only valid with the session
cookie it was issued under, sent as the ``Jenkins-Crumb`` header or form field.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import threading
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie
from typing import Final

from twins.jenkins.store import JenkinsStore, JenkinsUser

CRUMB_FIELD = "Jenkins-Crumb"


@dataclass(frozen=True)
class Caller:
    """The authenticated user (``None`` for anonymous) and whether a token proved it."""

    user: JenkinsUser | None = None
    via_token: bool = False

    @property
    def name(self) -> str:
        """``Authentication.getName()``: the user id, or ``anonymous``."""
        return self.user.id if self.user else "anonymous"


class BadCredentials:
    """The outcome of a Basic header that names no user or whose secret fits nothing."""

    def __repr__(self) -> str:
        return "BAD_CREDENTIALS"


BAD_CREDENTIALS: Final = BadCredentials()
ANONYMOUS: Final = Caller()


def authenticate(store: JenkinsStore, authorization: str | None) -> Caller | BadCredentials:
    """The caller named by an ``Authorization`` header, or :data:`BAD_CREDENTIALS`."""
    if authorization is None or not authorization.lower().startswith("basic "):
        return ANONYMOUS
    encoded = authorization[6:]
    try:
        # java.util.Base64's decoder does not insist on the trailing padding; Python's does.
        raw = base64.b64decode((encoded + "=" * (-len(encoded) % 4)).encode(), validate=True)
        decoded = raw.decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        decoded = ""
    user_id, colon, secret = decoded.partition(":")
    if not colon:
        return BAD_CREDENTIALS
    user = store.match_token(user_id, secret)
    if user is not None:
        return Caller(user, via_token=True)
    user = store.match_password(user_id, secret)
    if user is not None:
        return Caller(user, via_token=False)
    return BAD_CREDENTIALS


class CrumbIssuer:
    """Sessions and the crumbs bound to them (``DefaultCrumbIssuer`` with session ids)."""

    def __init__(self) -> None:
        self.cookie_name = f"JSESSIONID.{secrets.token_hex(4)}"
        self._salt = secrets.token_hex(16)
        self._sessions: set[str] = set()
        self._lock = threading.Lock()

    def session(self, cookie_header: str | None) -> str | None:
        """The id of a session this twin issued, from a ``Cookie`` header."""
        if not cookie_header:
            return None
        try:
            cookies = SimpleCookie(cookie_header)
        except CookieError:
            return None
        morsel = cookies.get(self.cookie_name)
        with self._lock:
            return morsel.value if morsel is not None and morsel.value in self._sessions else None

    def new_session(self) -> str:
        """Start a session (``request.getSession()`` creating one)."""
        session_id = secrets.token_urlsafe(18)
        with self._lock:
            self._sessions.add(session_id)
        return session_id

    def crumb(self, name: str, session_id: str) -> str:
        """The crumb for this caller name in this session."""
        digest = hashlib.sha256(f"{name};{session_id}".encode())
        digest.update(self._salt.encode("ascii"))
        return digest.hexdigest()

    def valid(self, name: str, session_id: str | None, crumb: str | None) -> bool:
        """True if ``crumb`` was issued to ``name`` in ``session_id``."""
        if not crumb or session_id is None:
            return False
        return hmac.compare_digest(self.crumb(name, session_id).encode(), crumb.encode("utf-8", "replace"))
