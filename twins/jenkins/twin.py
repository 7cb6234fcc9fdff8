"""``JenkinsTwin``: the public face of the twin, wiring store, endpoints, faults and server.

A test starts one, seeds users and tokens through Python, points its HTTP client at
``twin.url`` (the root URL, context path included) trusting ``twin.ca_path``, and asserts on
what the controller holds afterwards (``twin.tokens(user)``) and saw (``twin.requests``).
Everything runs in-process on background threads; ``stop()`` (or leaving the ``with`` block)
tears it down; temporary certificates go with the object.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from twins.http.faults import FaultControls
from twins.http.lifecycle import HTTPSTwin
from twins.jenkins.api_tokens import DESCRIPTOR, ApiTokenEndpoints
from twins.jenkins.clock import TwinClock
from twins.jenkins.control import PREFIX, TwinControl
from twins.jenkins.exchange import Request, Response
from twins.jenkins.faults import Fault, FaultInjector, RequestLog
from twins.jenkins.routes import JenkinsApp, JenkinsConfig
from twins.jenkins.security import CrumbIssuer
from twins.jenkins.server import TwinHTTPServer
from twins.jenkins.store import JenkinsStore, JenkinsUser, TokenInfo

if TYPE_CHECKING:
    import requests


class JenkinsTwin(HTTPSTwin, FaultControls[Fault]):
    """An HTTPS Jenkins controller that serves the API-token endpoints and nothing else.

    ``context_path`` is where Jenkins is mounted (``/`` or e.g. ``/jenkins/``). ``clock``
    (Unix seconds) and ``tz`` decide "today" for token expiry; :meth:`advance` moves it.
    ``admin_can_generate_new_tokens`` mirrors the JVM property of that name (off by default:
    even an administrator cannot mint a token for another user). ``version`` is what the
    ``X-Jenkins`` header says. Start, stop, ``with`` and ``ca_path`` come from
    :class:`~twins.http.lifecycle.HTTPSTwin`.
    """

    fault_type = Fault

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        cert_dir: str | Path | None = None,
        context_path: str = "/",
        *,
        clock: Callable[[], float] = time.time,
        tz: tzinfo = UTC,
        version: str = "2.578",
        admin_can_generate_new_tokens: bool = False,
    ) -> None:
        super().__init__(
            host,
            port,
            cert_dir,
            thread_name="jenkins-twin",
            cert_prefix="jenkins-twin-",
            organization="akv-rotator Jenkins twin",
        )
        self.clock = TwinClock(clock, tz)
        self.store = JenkinsStore(self.clock)
        self._faults = FaultInjector()
        self._log = RequestLog()
        self._app = JenkinsApp(
            JenkinsConfig(_normalise_context_path(context_path), version),
            self.store,
            tokens=ApiTokenEndpoints(
                self.store, self.clock, admin_can_generate=admin_can_generate_new_tokens
            ),
            crumbs=CrumbIssuer(),
            faults=self._faults,
            log=self._log,
        )
        self._control = TwinControl(
            self.store, self._faults, self._log, self.clock, root_url=lambda: self._app.root_url
        )

    def __repr__(self) -> str:
        where = self._app.root_url if self._app.base_url else "not started"
        return f"JenkinsTwin(url={where!r})"

    # -- lifecycle (the rest is HTTPSTwin's) ------------------------------------------

    def _make_server(self, address: tuple[str, int], context: ssl.SSLContext) -> TwinHTTPServer:
        return TwinHTTPServer(address, self._route, context)

    def _on_bound(self, base_url: str) -> None:
        self._app.base_url = base_url

    # -- where it is ------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The Jenkins root URL, e.g. ``https://127.0.0.1:PORT/jenkins/`` (trailing slash)."""
        self._started_url()  # raises before start()
        return self._app.root_url

    @property
    def control_url(self) -> str:
        """Where the ``/_twin/`` control surface is (always at the server root)."""
        return self._started_url() + PREFIX

    def descriptor_url(self, user_id: str) -> str:
        """``{root}user/{id}/descriptorByName/jenkins.security.ApiTokenProperty/``."""
        return f"{self.url}user/{quote(user_id, safe='')}/descriptorByName/{DESCRIPTOR}/"

    def session(self, user_id: str | None = None, secret: str | None = None) -> requests.Session:
        """A ``requests.Session`` trusting this twin's CA, with Basic auth if a user is given.

        ``trust_env`` is off: with it on, ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE`` silently win
        over ``session.verify`` (psf/requests#3829) and a proxy from the environment could
        capture loopback traffic.
        """
        import requests

        session = requests.Session()
        session.trust_env = False
        session.verify = str(self.ca_path)
        if user_id is not None:
            session.auth = (user_id, secret or "")
        return session

    # -- users and tokens ---------------------------------------------------------------

    def add_user(
        self,
        user_id: str,
        *,
        full_name: str | None = None,
        password: str | None = None,
        admin: bool = False,
        description: str | None = None,
    ) -> JenkinsUser:
        """Create a user (``admin`` grants Overall/Administer; ``password`` allows password Basic)."""
        return self.store.add_user(
            user_id, full_name=full_name, password=password, admin=admin, description=description
        )

    def add_token(
        self,
        user_id: str,
        name: str = "twin token",
        *,
        expires: date | None = None,
        legacy: bool = False,
        value: str | None = None,
        uuid: str | None = None,
    ) -> str:
        """Give the user a token and return its plaintext (the only copy).

        By default a random ``11`` token; ``value`` fixes it (``11`` + 32 hex, like Jenkins'
        ``addFixedToken``). ``legacy=True`` makes the pre-2.129 kind (32 hex by default, named
        "Legacy Token", no expiry). ``uuid`` fixes the token's id (needs ``value`` or ``legacy``).
        """
        if legacy:
            if expires is not None:
                raise ValueError("legacy tokens never expire")
            return self.store.add_legacy(user_id, value, uuid).value
        if value is None:
            if uuid is not None:
                raise ValueError("a fixed uuid needs a fixed value")
            return self.store.generate(user_id, name, expires).value
        return self.store.add_fixed(user_id, name, value, expires, uuid).value

    def tokens(self, user_id: str) -> list[TokenInfo]:
        """The user's tokens as ``(uuid, name, expires)``, oldest first; never their values."""
        return self.store.tokens(user_id)

    def users(self) -> list[JenkinsUser]:
        """Every user, in creation order."""
        return self.store.users()

    # -- faults and time ----------------------------------------------------------------

    def now(self) -> datetime:
        """The twin's time."""
        return self.clock.now()

    def advance(self, delta: timedelta | float = 0.0, *, days: float = 0) -> datetime:
        """Move the twin's clock (seconds or a timedelta, plus ``days``); returns the new now."""
        seconds = delta.total_seconds() if isinstance(delta, timedelta) else float(delta)
        return self.clock.advance(timedelta(days=days, seconds=seconds))

    @property
    def requests(self) -> RequestLog:
        """Jenkins requests seen so far (control calls excluded)."""
        return self._log

    # -- plumbing -----------------------------------------------------------------------

    def _route(self, request: Request) -> Response:
        """The only split between the two surfaces: ``/_twin/`` or Jenkins."""
        if request.path.startswith(PREFIX):
            return self._control.handle(request)
        return self._app.handle(request)


def _normalise_context_path(context_path: str) -> str:
    """``jenkins``, ``/jenkins`` and ``/jenkins/`` all mean ``/jenkins/``; ``""`` means ``/``."""
    stripped = context_path.strip("/")
    if stripped.startswith("_twin"):
        raise ValueError("the context path must not shadow the /_twin/ control surface")
    return f"/{stripped}/" if stripped else "/"
