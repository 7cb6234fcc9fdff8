"""The contract every target kind implements, and what it is given to do its work."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from rotation.secret_value import Credential
from rotation.targets.definition import TargetDefinition


@dataclass(frozen=True, slots=True)
class TargetContext:
    """Everything a target needs: the operator's definition, the strategy the secret chose,
    the admin login the definition names (if any), and time limits.

    Nothing here comes from a tag except ``strategy``, which the definition allows.
    """

    definition: TargetDefinition
    strategy: str
    admin: Credential | None
    connect_timeout_seconds: float


class Target(Protocol):
    """A system holding a credential that akv-rotator can change, check and retire.

    Every method must be safe to repeat, because a rotation that dies is resumed by another
    worker from its last recorded step: ``apply`` is a no-op when the new credential already
    works, and ``retire`` is a no-op when the previous credential is already gone.
    """

    #: True when the strategy leaves the previous credential working until ``retire`` ends it
    #: (alternating users, API tokens); False when ``apply`` already ended it (single user).
    retires_previous: bool

    def next_username(self, current: Credential) -> str:
        """The login the next credential belongs to (the same one, or the alternate)."""
        ...

    def accepts(self, credential: Credential) -> bool:
        """True when a fresh login with ``credential`` succeeds; False when it is refused."""
        ...

    def apply(self, current: Credential, new: Credential) -> None:
        """Make ``new`` a credential the target accepts; ``current`` still works when called."""
        ...

    def verify(self, credential: Credential) -> None:
        """Prove ``credential`` works with a fresh login; raise VerificationFailed if not."""
        ...

    def parity_differences(self, current: Credential) -> list[str]:
        """Every way the login the next credential belongs to can do more or less than
        ``current``'s, each named; empty when they match or the strategy keeps one login.

        Checked before anything changes, so that a switch never hands an application a
        login with different privileges. Read-only.
        """
        ...

    def retire(self, previous: Credential, current: Credential) -> None:
        """End ``previous`` so it no longer authenticates, never touching ``current``."""
        ...


@runtime_checkable
class MintingTarget(Target, Protocol):
    """A target whose server creates the new credential itself (an API token), so the
    rotator cannot generate it first and store it before anything changes.

    The engine narrows the gap instead: it journals the intent (the credential's ``name``,
    derived from the rotation id) before :meth:`mint`, stores the answer as the pending
    credential at once, and a resumed rotation reuses a stored pending credential rather
    than minting another. A crash between the server's answer and that store leaves one
    credential nobody knows; :meth:`sweep_strays` deals with it before minting again.
    """

    def mint(self, current: Credential, name: str, expires_on: datetime) -> Credential:
        """Have the server create a new credential for ``current``'s user, named ``name``
        (so a human can tell which rotation made it), authenticated by ``current``.
        ``expires_on`` is the new Key Vault version's expiry, for servers whose tokens
        carry one."""
        ...

    def sweep_strays(self, current: Credential, name: str) -> list[str]:
        """Remove credentials an earlier attempt minted as ``name`` but never stored.

        Returns what could not be removed (described, never a value), for the history;
        an empty list when nothing is left behind.
        """
        ...
