"""The Jenkins surface: what a request goes through before and after a web method runs.

Order of checks, as Jenkins' filter chain and Stapler apply them:

1. an armed fault (before processing) -> its error, a dropped connection, or a delay;
2. outside the context path -> 404 (another web application, or none);
3. ``Authorization: Basic`` that does not check out -> 401 ``WWW-Authenticate: Basic
   realm="Jenkins"`` (``BasicHeaderProcessor``), even for ``whoAmI``;
4. a POST not authenticated by an API token without a valid crumb -> 403 "No valid crumb
   was included in the request" (``CrumbFilter``; ``ApiCrumbExclusion`` spares tokens);
5. ``whoAmI`` (an ``UnprotectedRootAction``) answers anyone; every other page needs a
   logged-in user: anonymous -> 403 with a redirect to the login page
   (``HudsonAuthenticationEntryPoint``), never 401;
6. Stapler routing: unknown user or page -> 404; a POST-only web method by another method ->
   405 ``Allow: POST`` (``RequirePOST``), before any permission check;
7. the web method (:mod:`twins.jenkins.api_tokens`).

The twin's model of the controller: security realm "Jenkins' own user database", every
logged-in user has Overall/Read, users flagged ``admin`` have Overall/Administer, anonymous
has nothing. Every answer carries ``X-Jenkins: <version>`` as a real controller's pages do.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from urllib.parse import unquote

from twins.http.faults import DROP_CONNECTION, fault_answers
from twins.jenkins import answers, wire
from twins.jenkins.api_tokens import DESCRIPTOR, ApiTokenEndpoints, TokenCall
from twins.jenkins.exchange import Request, Response
from twins.jenkins.faults import Fault, FaultInjector, RecordedRequest, RequestLog
from twins.jenkins.security import CRUMB_FIELD, BadCredentials, Caller, CrumbIssuer, authenticate
from twins.jenkins.store import JenkinsStore

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class JenkinsConfig:
    """The controller's identity: context path (``/`` or ``/jenkins/``) and version header."""

    context_path: str = "/"
    version: str = "2.578"


class JenkinsApp:
    """Answers Jenkins requests; ``base_url`` (``https://host:port``) is set once bound."""

    def __init__(
        self,
        config: JenkinsConfig,
        store: JenkinsStore,
        *,
        tokens: ApiTokenEndpoints,
        crumbs: CrumbIssuer,
        faults: FaultInjector,
        log: RequestLog,
    ) -> None:
        self.config = config
        self.store = store
        self.tokens = tokens
        self.crumbs = crumbs
        self.faults = faults
        self.log = log
        self.base_url = ""

    @property
    def root_url(self) -> str:
        """``Jenkins.getRootUrl()``: base URL plus context path, with a trailing slash."""
        return self.base_url + self.config.context_path

    def handle(self, request: Request) -> Response:
        """Answer one request; never raises for anything a client can send."""
        fault = self.faults.take(request.method, request.path)
        caller: Caller | None = None
        if fault is not None and fault_answers(fault, processed=False):
            return self._record(request, None, _fault_response(fault, request.path))
        try:
            caller, response = self._serve(request)
        except Exception:
            # A twin bug must still look like a server failure to the client, not a hang-up.
            logger.exception("twin failed method=%s path=%s", request.method, request.path)
            response = answers.oops("twin-failure")
        if fault is not None and fault_answers(fault, processed=True):
            response = _fault_response(fault, request.path)
        return self._record(request, caller, response)

    # -- the chain ----------------------------------------------------------------------

    def _serve(self, request: Request) -> tuple[Caller | None, Response]:
        context = self.config.context_path
        if not request.path.startswith(context):
            return None, answers.send_error(404, request.path, "Not Found")
        parts = [unquote(p) for p in request.path[len(context) :].split("/")]
        authenticated = authenticate(self.store, request.header("Authorization"))
        if isinstance(authenticated, BadCredentials):
            return None, answers.unauthorized(request.path)
        caller = authenticated
        if request.method == "POST" and not caller.via_token and not self._crumb_ok(request, caller):
            return caller, answers.send_error(403, request.path, answers.NO_VALID_CRUMB)
        if _is(parts, "whoAmI", "api", "json"):
            return caller, answers.api_json(wire.who_am_i(caller.user))
        if caller.user is None:
            return caller, answers.login_required(context, request.target)
        if _is(parts, "me", "api", "json"):
            return caller, answers.api_json(wire.me(caller.user, self.root_url))
        if _is(parts, "crumbIssuer", "api", "json"):
            return caller, self._issue_crumb(request, caller)
        if len(parts) >= 5 and parts[0] == "user" and parts[2:4] == ["descriptorByName", DESCRIPTOR]:
            return caller, self._token_method(request, caller, parts)
        return caller, answers.send_error(404, request.path, "Not Found")

    def _token_method(self, request: Request, caller: Caller, parts: list[str]) -> Response:
        owner = self.store.user(parts[1])
        method = self.tokens.methods.get(parts[4])
        if owner is None or method is None or parts[5:] not in ([], [""]):
            return answers.send_error(404, request.path, "Not Found")
        if request.method != "POST":
            return answers.method_not_allowed(request.path)
        return method(TokenCall(request, caller, owner))

    def _crumb_ok(self, request: Request, caller: Caller) -> bool:
        session = self.crumbs.session(request.header("Cookie"))
        crumb = request.header(CRUMB_FIELD) or request.param(CRUMB_FIELD)
        return self.crumbs.valid(caller.name, session, crumb)

    def _issue_crumb(self, request: Request, caller: Caller) -> Response:
        headers: list[tuple[str, str]] = []
        session = self.crumbs.session(request.header("Cookie"))
        if session is None:
            session = self.crumbs.new_session()
            headers.append(
                (
                    "Set-Cookie",
                    f"{self.crumbs.cookie_name}={session}; Path={self.config.context_path}; Secure; HttpOnly",
                )
            )
        crumb = self.crumbs.crumb(caller.name, session)
        return answers.api_json(wire.crumb(crumb, CRUMB_FIELD), headers)

    def _record(self, request: Request, caller: Caller | None, response: Response) -> Response:
        if not response.drop:
            response.headers.append(("X-Jenkins", self.config.version))
        self.log.append(
            RecordedRequest(
                method=request.method,
                path=request.path,
                caller=caller.name if caller is not None else None,
                status=0 if response.drop else response.status,
            )
        )
        return response


def _is(parts: list[str], *expected: str) -> bool:
    """The path is exactly ``expected``, with or without a trailing slash."""
    return parts == list(expected) or parts == [*expected, ""]


def _fault_response(fault: Fault, uri: str) -> Response:
    if fault.status == DROP_CONNECTION:
        return Response(0, drop=True)
    if fault.body is not None:
        return Response(fault.status, fault.body.encode(), wire.HTML_TYPE)
    if fault.status == 503:
        return answers.starting(fault.retry_after)
    response = answers.send_error(fault.status, uri)
    if fault.retry_after is not None:
        response.headers.append(("Retry-After", str(fault.retry_after)))
    return response
