"""What every kind's driver-free address parser shares: its error, and the query string.

Query keys are percent-decoded before any kind checks them, so ``pass%77ord`` is
``password``; a malformed query is refused as a whole.
"""

from __future__ import annotations

from urllib.parse import parse_qsl


class AddressError(ValueError):
    """The address is not one akv-rotator will connect to; the message lists why."""


def query_pairs(query: str) -> list[tuple[str, str]]:
    """The decoded ``(key, value)`` pairs of an address's query string, in order."""
    try:
        return parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query),
                         errors="strict")
    except (ValueError, UnicodeDecodeError) as exc:
        raise AddressError(f"has a malformed query string: {exc}") from None
