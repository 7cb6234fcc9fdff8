"""One HTTP exchange as the twin's logic sees it, free of sockets.

:class:`Request` is what :mod:`twins.jenkins.server` read off the wire; :class:`Response` is
what it writes back (or, with ``drop``, the connection it cuts without answering).
``Request.param`` follows the servlet rules Stapler's ``@QueryParameter`` relies on: the
query string first, then an ``application/x-www-form-urlencoded`` body.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from urllib.parse import parse_qs, urlsplit

FORM_TYPE = "application/x-www-form-urlencoded"


@dataclass(frozen=True)
class Request:
    """Method, target (path + query, still percent-encoded), headers and body."""

    method: str
    target: str
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""

    @cached_property
    def path(self) -> str:
        """The percent-encoded path, without the query."""
        return urlsplit(self.target).path

    @cached_property
    def _params(self) -> dict[str, list[str]]:
        merged = parse_qs(urlsplit(self.target).query, keep_blank_values=True)
        content_type = (self.header("Content-Type") or "").split(";")[0].strip().lower()
        if content_type == FORM_TYPE and self.body:
            form = parse_qs(self.body.decode("utf-8", errors="replace"), keep_blank_values=True)
            for name, values in form.items():
                merged.setdefault(name, []).extend(values)
        return merged

    def param(self, name: str) -> str | None:
        """``ServletRequest.getParameter``: the first value, query string before form body."""
        values = self._params.get(name)
        return values[0] if values else None

    def header(self, name: str) -> str | None:
        """A header by case-insensitive name."""
        wanted = name.lower()
        for key, value in self.headers.items():
            if key.lower() == wanted:
                return value
        return None


@dataclass
class Response:
    """Status, body bytes and headers; ``drop`` closes the connection without an answer."""

    status: int
    body: bytes = b""
    content_type: str | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)
    drop: bool = False

    def header(self, name: str) -> str | None:
        """The first header with this name (case-insensitive), for tests and logging."""
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None
