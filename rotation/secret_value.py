"""Secret material in a type that cannot leak by accident.

``repr``/``str``/``format`` are redacted, so a secret that reaches a log line, an exception
message or a span attribute shows as ``<redacted>``. The plaintext comes out only through the
explicit :meth:`SecretValue.reveal` call, which is easy to grep for in review.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field

REDACTED = "<redacted>"


@dataclass(frozen=True, slots=True)
class SecretValue:
    """A secret string with a redacted ``repr``; use :meth:`reveal` at the point of use."""

    _plaintext: str = field(repr=False)

    def reveal(self) -> str:
        """Return the plaintext. Call it only where the value leaves for its real consumer."""
        return self._plaintext

    def __repr__(self) -> str:
        return f"SecretValue({REDACTED})"

    def __str__(self) -> str:
        return REDACTED

    def __format__(self, spec: str) -> str:
        return REDACTED

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SecretValue):
            return NotImplemented
        return hmac.compare_digest(self._plaintext.encode(), other._plaintext.encode())

    def __hash__(self) -> int:
        return hash(("SecretValue", self._plaintext))

    def __len__(self) -> int:
        return len(self._plaintext)


@dataclass(frozen=True, slots=True)
class Credential:
    """A login and its secret as stored in Key Vault: a database user and password, or an
    API token and the user it authenticates as.

    ``password`` holds the secret whichever it is (``secret_field`` says which the stored
    JSON calls it); ``ref`` is the token's non-secret identity on its server (a Jenkins token
    uuid, a NetBox token id), which revoking it needs, stored as ``ref_field``.
    """

    username: str
    password: SecretValue
    secret_field: str = "password"  # noqa: S105 (a field name)
    ref_field: str | None = None
    ref: str | None = None
