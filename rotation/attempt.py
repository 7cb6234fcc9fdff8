"""What one worker's attempt at a rotation shares between the engine and its helpers.

:class:`Progress` holds the latest journaled record (and so the current ETag) of the running
attempt, and the steps completed since that ride on the next write; :class:`Opening` is what
the caller that began the rotation already read; :class:`StepObserver` sees every step
boundary (telemetry is one observer, the fault-injection tests are another).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from rotation.journal.model import RotationRecord, Step, StepTiming

if TYPE_CHECKING:
    from rotation.keyvault import SecretVersion


class StepObserver(Protocol):
    """Sees each step's boundaries: before it, after its effect, after it is journaled."""

    def before(self, step: Step, record: RotationRecord) -> None: ...

    def after_effect(self, step: Step, record: RotationRecord) -> None: ...

    def after_journal(self, step: Step, record: RotationRecord) -> None: ...

    def inside(self, step: Step, point: str, record: RotationRecord) -> None:
        """A named point inside a step's effect (``minted``: the server answered, the
        pending credential is not stored yet)."""


class NoObserver:
    """The default observer: does nothing."""

    def before(self, step: Step, record: RotationRecord) -> None:
        return None

    def after_effect(self, step: Step, record: RotationRecord) -> None:
        return None

    def after_journal(self, step: Step, record: RotationRecord) -> None:
        return None

    def inside(self, step: Step, point: str, record: RotationRecord) -> None:
        return None


@dataclass
class Progress:
    """The latest journaled record of the running attempt (it carries the current ETag), and
    what the next journal write carries: steps completed since that changed nothing (so
    repeating them after a crash changes nothing either) and changes that need no write of
    their own."""

    record: RotationRecord
    unjournaled: list[StepTiming] = field(default_factory=list)
    #: Other changes the next write carries (the first attempt's trace, the target's id).
    changes: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Opening:
    """What the caller that has just begun a rotation, leased to its worker, hands the first
    attempt so that it does not ask again.

    ``latest`` is the secret's latest version as that caller read it, moments before the
    begin: the version being rotated, with the tags and value the context needs, and the
    proof prepare wants that the secret has not moved on. An opening also means that no
    earlier attempt exists, so nothing can have been stored for the rotation yet.
    """

    latest: SecretVersion
