"""The contract every target kind implements, and what it is given to do its work."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from rotation.binding import SecretBinding
from rotation.secret_value import Credential


@dataclass(frozen=True, slots=True)
class TargetContext:
    """Everything a target needs: the binding, an admin login if any, and time limits."""

    binding: SecretBinding
    admin: Credential | None
    connect_timeout_seconds: float


class Target(Protocol):
    """A system holding a credential that akv-rotator can change and check.

    Both methods must be safe to repeat: ``apply`` is a no-op when the new credential already
    works, so a retry after a lost acknowledgement cannot lock anyone out.
    """

    def apply(self, current: Credential, new: Credential) -> None:
        """Make ``new`` the credential the target accepts for ``new.username``."""
        ...

    def verify(self, credential: Credential) -> None:
        """Prove ``credential`` works with a fresh login; raise VerificationFailed if not."""
        ...

    def accepts(self, credential: Credential) -> bool:
        """True when a fresh login with ``credential`` succeeds; False when it is refused."""
        ...
