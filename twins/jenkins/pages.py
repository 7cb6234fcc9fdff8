"""HTML bodies for Jenkins' non-JSON answers: close enough for a client that logs them.

Clients of the token API read status codes and headers, never these pages; they exist so a
client that prints the body of an unexpected answer shows what it would show in production
(an HTML page, not JSON). Shapes, not byte-for-byte copies:

- ``sendError`` (401, 400 ``errorWithoutStack``, 403 crumb, 404) -> Jetty's error page;
- an anonymous request to a protected page -> ``Util.printRedirect`` via
  ``HudsonAuthenticationEntryPoint`` (403 plus an auto-redirect to the login page);
- access denied to a logged-in user -> the ``accessDenied`` page;
- an exception out of a web method -> the "Oops!" page (500);
- HTTP 503 while Jenkins starts -> ``hudson/util/HudsonIsLoading/index.jelly``.
"""

from __future__ import annotations

from html import escape
from http import HTTPStatus
from urllib.parse import quote

JETTY_VERSION = "12.0.25"


def jetty_error(status: int, uri: str, message: str | None = None) -> str:
    """Jetty's ``ErrorHandler`` page, as ``HttpServletResponse.sendError`` produces it."""
    reason = _reason(status)
    return (
        "<html>\n<head>\n"
        '<meta http-equiv="Content-Type" content="text/html;charset=utf-8"/>\n'
        f"<title>Error {status} {escape(message or reason)}</title>\n"
        "</head>\n<body>\n"
        f"<h2>HTTP ERROR {status} {escape(message or reason)}</h2>\n"
        "<table>\n"
        f"<tr><th>URI:</th><td>{escape(uri)}</td></tr>\n"
        f"<tr><th>STATUS:</th><td>{status}</td></tr>\n"
        f"<tr><th>MESSAGE:</th><td>{escape(message or reason)}</td></tr>\n"
        "<tr><th>SERVLET:</th><td>Stapler</td></tr>\n"
        "</table>\n"
        f'<hr/><a href="https://jetty.org/">Powered by Jetty:// {JETTY_VERSION}</a><hr/>\n'
        "</body>\n</html>\n"
    )


def login_redirect(context_path: str, uri: str) -> str:
    """``Util.printRedirect`` to ``login?from=<uri>``: what anonymous gets with its 403."""
    login = escape(f"{context_path}login?from={quote(uri, safe='')}", quote=True)
    return (
        f"<html><head><meta http-equiv='refresh' content='1;url={login}'/>"
        f"<script id='redirect' data-redirect-url='{login}' "
        f"src='{escape(context_path)}static/twin/scripts/redirect.js'></script></head>"
        "<body style='background-color:white; color:white;'>\n"
        "Authentication required\n<!--\n-->\n</body></html>\n"
    )


def access_denied(name: str, permission: str) -> str:
    """The ``accessDenied`` view: who you are and which permission was missing."""
    return (
        "<!DOCTYPE html><html><head><title>Access Denied [Jenkins]</title></head><body>"
        f"<h1>Access Denied</h1><p>{escape(name)} is missing the {escape(permission)} permission</p>"
        "</body></html>\n"
    )


def oops(reason: str) -> str:
    """Jenkins' "Oops!" page for an exception thrown out of a web method (500)."""
    return (
        "<!DOCTYPE html><html><head><title>Jenkins [Jenkins]</title></head><body>"
        "<h1>Oops!</h1><p>A problem occurred while processing the request.</p>"
        f"<p>Logging ID={escape(reason)}</p></body></html>\n"
    )


def starting() -> str:
    """``HudsonIsLoading``: the 503 page Jenkins serves while it starts or restarts."""
    return (
        "<!DOCTYPE html><html><head><title>Starting Jenkins</title>"
        '<meta name="ROBOTS" content="NOFOLLOW" /></head><body>'
        '<div class="simple-page" role="main"><div class="app-jenkins-booting">'
        '<h1 class="loading">Please wait while Jenkins is getting ready to work</h1>'
        '<p class="restarting">Your browser will reload automatically when Jenkins is ready.</p>'
        "</div></div></body></html>\n"
    )


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
