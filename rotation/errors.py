"""The one exception tree of akv-rotator. Each type says whether a retry can help.

::

    RotatorError                     base; never raised itself
    ├── TransientError               retry later (connection refused, 429, 5xx); carries retry_after
    ├── ConcurrentRotation           another rotation of the same secret is under way (HTTP 409)
    └── PermanentError               retrying the same input cannot help
        ├── InvalidRequest           bad input from a caller (HTTP 400)
        ├── SecretNotFound           the Key Vault secret does not exist (HTTP 404)
        ├── SecretNotRotatable       the secret exists but cannot be rotated as it is:
        │   │                        not opted in, malformed tags, disabled (HTTP 409 or 400)
        │   └── BindingRefused       the operator's target does not admit this secret or
        │                            login (HTTP 403); refused before anything changes
        ├── ConfigurationError       the app's own settings are missing or malformed
        ├── AccessDenied             Key Vault or a target refused our identity
        └── VerificationFailed       the new credential did not log in

Adapters translate their library's errors into this tree in one place and chain the
original with ``raise ... from exc``. Messages never contain a secret value.
"""

from __future__ import annotations


class RotatorError(Exception):
    """Base of every error akv-rotator raises on purpose.

    ``rotation_id`` names the journaled rotation the error ended, once one was opened.
    """

    rotation_id: str | None = None


class TransientError(RotatorError):
    """A failure that may pass: the same call can succeed if repeated later.

    ``retry_after`` is the server's hint in seconds (``Retry-After``), or ``None``.
    """

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Throttled(TransientError):
    """The service refused for load (HTTP 429), not for anything about this rotation.

    A burst of near-expiry events scales the app out onto one vault, whose limits then refuse
    some calls: those rotations back off with jitter and come back, and throttling alone never
    uses up a rotation's attempts (:mod:`rotation.engine`).
    """


class ConcurrentRotation(RotatorError):
    """Another rotation of the same secret holds it; ``rotation_id`` names that one."""

    def __init__(self, message: str, *, rotation_id: str | None = None) -> None:
        super().__init__(message)
        self.rotation_id = rotation_id


class PermanentError(RotatorError):
    """A failure that repeating the same call cannot fix; it needs a person or new input."""


class InvalidRequest(PermanentError):
    """The caller's input was malformed; the message says what was wrong."""


class SecretNotFound(PermanentError):
    """The named Key Vault secret (or version) does not exist."""


class SecretNotRotatable(PermanentError):
    """The secret exists but is not rotatable as it stands (not opted in, bad tags, disabled)."""


class BindingRefused(SecretNotRotatable):
    """The secret's tags select a target that does not admit it (its name, vault or login).

    ``reason`` is a short machine-readable cause, for metrics and queries.
    """

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class ConfigurationError(PermanentError):
    """The app's settings are missing or malformed. Lists every problem at once."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid configuration: " + "; ".join(problems))
        self.problems = problems


class AccessDenied(PermanentError):
    """Key Vault or the target refused the identity we used (401/403, bad password)."""


class VerificationFailed(PermanentError):
    """The new credential was applied but a fresh login with it did not succeed."""
