"""What one worker's attempt at a rotation shares between the engine and its helpers.

:class:`Progress` holds the latest journaled record (and so the current ETag) of the running
attempt; :class:`StepObserver` sees every step boundary (telemetry is one observer, the
fault-injection tests are another).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from rotation.journal.model import RotationRecord, Step


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
    """The latest journaled record of the running attempt (it carries the current ETag)."""

    record: RotationRecord
