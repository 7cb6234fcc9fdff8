"""The journal's errors, placed in the project's one tree (:mod:`rotation.errors`).

::

    ConcurrentRotation
    └── JournalConflict          someone else changed the rotation; ``record`` is its current state
        ├── LeaseHeld            claim: another worker's lease is still valid
        └── LeaseLost            advance/close/release: the row changed since ``record`` was read;
                                 the caller no longer owns the rotation and must stop at once
    TransientError
    ├── NotYetDue                claim: the rotation backs off until ``next_attempt_at``
    │                            (``retry_after`` = the seconds left)
    └── JournalUnavailable       the storage is unreachable, throttled or busy
    PermanentError
    ├── RotationNotFound         no rotation with that id
    ├── RotationFinished         the rotation succeeded or failed; nothing may change it
    ├── InvalidTransition        the caller asked for a change the journal never allows
    │                            (a step backwards, a journal-owned field, ...): a bug
    └── JournalError             the storage refused a request retrying cannot fix, or its rows
                                 are inconsistent

Messages name rotations, vaults and secrets, never a value.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rotation.errors import ConcurrentRotation, PermanentError, TransientError

if TYPE_CHECKING:
    from rotation.journal.model import RotationRecord


class JournalConflict(ConcurrentRotation):
    """Another worker changed the rotation; ``record`` is what the journal holds now."""

    def __init__(self, message: str, record: RotationRecord) -> None:
        super().__init__(message, rotation_id=record.rotation_id)
        self.record = record


class LeaseHeld(JournalConflict):
    """``claim`` refused: ``record.lease_owner`` holds the lease until ``record.lease_until``."""


class LeaseLost(JournalConflict):
    """The rotation changed since the caller read it (another worker took it over): stop now."""


class NotYetDue(TransientError):
    """``claim`` refused: the rotation waits until ``record.next_attempt_at``."""

    def __init__(self, message: str, record: RotationRecord, *, retry_after: float) -> None:
        super().__init__(message, retry_after=retry_after)
        self.record = record
        self.rotation_id = record.rotation_id


class JournalUnavailable(TransientError):
    """The journal's storage could not be reached or was too busy; try again later."""


class RotationNotFound(PermanentError):
    """No rotation with this id is in the journal."""

    def __init__(self, message: str, *, rotation_id: str) -> None:
        super().__init__(message)
        self.rotation_id = rotation_id


class RotationFinished(PermanentError):
    """The rotation has finished (``record.status`` is succeeded or failed); it cannot change."""

    def __init__(self, message: str, record: RotationRecord) -> None:
        super().__init__(message)
        self.record = record
        self.rotation_id = record.rotation_id


class InvalidTransition(PermanentError):
    """A change the journal never allows, such as moving ``step`` backwards. A caller's bug."""


class JournalError(PermanentError):
    """The storage refused a request for a reason retrying cannot fix, or its rows disagree."""
