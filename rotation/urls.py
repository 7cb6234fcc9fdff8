"""HTTPS URLs that carry credentials: checked once, with the parser the HTTP stack uses.

The Key Vault SDK sends requests through azure-core's ``requests`` transport, which hands the
URL to urllib3; so what counts as "the host" here is what :func:`urllib3.util.parse_url`
says, never :func:`urllib.parse.urlsplit`, which disagrees on URLs such as
``https://192.0.2.2:8443\\@localhost`` (urlsplit: ``localhost``; urllib3 and the
connection: ``192.0.2.2``). Userinfo (``@``) and backslashes are refused outright, so there is
no URL two parsers could read two ways. The same rule serves the vaults and every HTTP target
kind: TLS always (``https``), no credentials in the URL, no query or fragment.
"""

from __future__ import annotations

import ipaddress

from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url


class UnsafeUrl(ValueError):
    """A URL that could send a credential somewhere other than where it seems to point."""


def checked_https_url(url: str, *, what: str) -> str:
    """``url`` without a trailing slash, if it is a plain ``https://host[:port][/path]`` URL.

    Raises :class:`UnsafeUrl` naming ``what`` and the reason otherwise.
    """
    text = url.strip()
    if any(ch in text for ch in "@\\") or any(ord(ch) < 0x21 or ord(ch) == 0x7F for ch in text):
        raise UnsafeUrl(f"{what} must not contain '@', '\\', spaces or control characters")
    try:
        parsed = parse_url(text)
    except LocationParseError as exc:
        raise UnsafeUrl(f"{what} is not a URL: {exc}") from None
    if parsed.scheme != "https":
        raise UnsafeUrl(f"{what} must be an https:// URL")
    if not parsed.host:
        raise UnsafeUrl(f"{what} has no host")
    if parsed.auth:
        raise UnsafeUrl(f"{what} must not carry credentials")
    if parsed.query is not None or parsed.fragment is not None:
        raise UnsafeUrl(f"{what} must not have a query or fragment")
    return text.rstrip("/")


def is_loopback(url: str) -> bool:
    """True when the host the HTTP stack would connect to is this machine's loopback."""
    try:
        host = (parse_url(url).host or "").strip("[]").lower()
    except LocationParseError:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
