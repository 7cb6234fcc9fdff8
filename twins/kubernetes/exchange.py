"""One HTTP exchange as the twin's logic sees it, free of sockets.

:class:`Request` is what :mod:`twins.kubernetes.server` read off the wire; :class:`Response`
is what it writes back as JSON (or, with ``drop``, the connection it cuts without answering).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit


@dataclass(frozen=True)
class Request:
    """Method, target (path + query, still percent-encoded), headers and body."""

    method: str
    target: str
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""

    @cached_property
    def path(self) -> str:
        """The decoded path, without the query."""
        return unquote(urlsplit(self.target).path)

    @cached_property
    def query(self) -> dict[str, str]:
        """Query parameters, first value of each."""
        parsed = parse_qs(urlsplit(self.target).query, keep_blank_values=True)
        return {name: values[0] for name, values in parsed.items()}

    def header(self, name: str) -> str | None:
        """A header by case-insensitive name."""
        wanted = name.lower()
        for key, value in self.headers.items():
            if key.lower() == wanted:
                return value
        return None

    @property
    def content_type(self) -> str:
        """The media type of the body, without parameters, lower case ('' if none)."""
        return (self.header("Content-Type") or "").split(";")[0].strip().lower()


@dataclass
class Response:
    """Status, JSON body (``None``: empty) and headers; ``drop`` closes without an answer."""

    status: int
    body: Any = None
    headers: list[tuple[str, str]] = field(default_factory=list)
    drop: bool = False
