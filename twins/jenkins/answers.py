"""The kinds of answer Jenkins gives, each built in one place with its status and headers.

Which call site uses which answer is the behaviour under test; how each looks on the wire
(``Content-Type``, ``WWW-Authenticate``, ``X-Required-Permission``, empty or HTML body) is
decided here once.
"""

from __future__ import annotations

from typing import Any

from twins.jenkins import pages, wire
from twins.jenkins.exchange import Response

ADMINISTER = "hudson.model.Hudson.Administer"
READ = "hudson.model.Hudson.Read"
BASIC_CHALLENGE = 'Basic realm="Jenkins"'
NO_VALID_CRUMB = "No valid crumb was included in the request"


def ok() -> Response:
    """``HttpResponses.ok()``: 200, no body, no content type."""
    return Response(200)


def forbidden() -> Response:
    """``HttpResponses.forbidden()``: 403 and nothing else (``generateNewToken`` refusals)."""
    return Response(403)


def status_json(body: dict[str, Any]) -> Response:
    """``okJSON``/``errorJSON``: always 200."""
    return Response(200, wire.dumps(body), wire.OK_JSON_TYPE)


def api_json(body: dict[str, Any], headers: list[tuple[str, str]] | None = None) -> Response:
    """An exported bean at ``…/api/json``."""
    return Response(200, wire.dumps(body), wire.API_JSON_TYPE, list(headers or []))


def send_error(status: int, uri: str, message: str | None = None) -> Response:
    """``HttpServletResponse.sendError``: Jetty's HTML error page."""
    return Response(status, pages.jetty_error(status, uri, message).encode(), wire.HTML_TYPE)


def unauthorized(uri: str) -> Response:
    """Bad Basic credentials (``BasicAuthenticationEntryPoint``, realm ``Jenkins``)."""
    response = send_error(401, uri, "Unauthorized")
    response.headers.append(("WWW-Authenticate", BASIC_CHALLENGE))
    return response


def login_required(context_path: str, uri: str) -> Response:
    """Anonymous on a page that needs a login: 403 (not 401) and a redirect to the login page."""
    body = pages.login_redirect(context_path, uri).encode()
    return Response(403, body, wire.HTML_TYPE, _denied_headers("anonymous", READ))


def access_denied(name: str, permission: str) -> Response:
    """``AccessDeniedHandlerImpl``: 403 naming the caller and the missing permission."""
    body = pages.access_denied(name, permission).encode()
    return Response(403, body, wire.HTML_TYPE, _denied_headers(name, permission))


def method_not_allowed(uri: str) -> Response:
    """``@RequirePOST`` refusing another method."""
    response = send_error(405, uri, "This URL requires POST")
    response.headers.append(("Allow", "POST"))
    return response


def oops(logging_id: str) -> Response:
    """An exception thrown out of a web method (e.g. an unparsable expiry): 500."""
    return Response(500, pages.oops(logging_id).encode(), wire.HTML_TYPE)


def starting(retry_after: int | str | None = None) -> Response:
    """503 while Jenkins starts (``HudsonIsLoading``)."""
    headers = [("Cache-Control", "no-cache,no-store,must-revalidate"), ("Expires", "0")]
    if retry_after is not None:
        headers.append(("Retry-After", str(retry_after)))
    return Response(503, pages.starting().encode(), wire.HTML_TYPE, headers)


def _denied_headers(name: str, permission: str) -> list[tuple[str, str]]:
    """``AccessDeniedException3.reportAsHeaders`` with group headers off (the default)."""
    return [
        ("X-You-Are-Authenticated-As", name),
        (
            "X-You-Are-In-Group-Disabled",
            "JENKINS-39402: use -Dhudson.security.AccessDeniedException2.REPORT_GROUP_HEADERS=true "
            "or use /whoAmI to diagnose",
        ),
        ("X-Required-Permission", permission),
    ]
