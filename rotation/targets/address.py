"""What every kind's driver-free address parser shares: its error, the credential-free
location, and the query string.

Query keys are percent-decoded before any kind checks them, so ``pass%77ord`` is
``password``; a malformed query is refused as a whole.
"""

from __future__ import annotations

from urllib.parse import SplitResult, parse_qsl


class AddressError(ValueError):
    """The address is not one akv-rotator will connect to; the message lists why."""


def location(parts: SplitResult, problems: list[str]) -> str:
    """The URI's ``host[:port]`` part; a user name, password or fragment is a problem."""
    netloc = parts.netloc
    if "@" in netloc:
        problems.append("must not contain a user name or password (the part before '@')")
        netloc = netloc.rsplit("@", 1)[1]
    if parts.fragment:
        problems.append("must not have a '#' fragment")
    return netloc


def query_pairs(query: str) -> list[tuple[str, str]]:
    """The decoded ``(key, value)`` pairs of an address's query string, in order."""
    try:
        return parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query),
                         errors="strict")
    except (ValueError, UnicodeDecodeError) as exc:
        raise AddressError(f"has a malformed query string: {exc}") from None
