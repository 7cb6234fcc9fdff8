"""The part of fault injection that does not depend on the protocol: arming, matching, timing.

Each twin has its own ``Fault`` dataclass, because what a fault answers with and which requests
it filters on are protocol matters (a Key Vault error body, Jenkins' "getting ready" page). What
they share lives here, so the two twins cannot drift apart on it:

- the meaning of ``status``: 0 drops the connection without an answer, 400-599 answers with an
  error, 200 (with ``delay_seconds``) answers normally but late (:func:`check_fault`);
- :class:`FaultInjector`: faults are consumed first-in first-out by matching requests, ``count``
  going down until the fault is spent;
- :func:`fault_answers`: a fault acts once, before the operation or, with ``after_processing``,
  after it (the lost response: the write landed, the client never heard), first waiting out its
  ``delay_seconds``, which is how a client's read timeout meets a write that still lands.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import Field, replace
from typing import Any, ClassVar, Generic, Protocol, TypeVar

logger = logging.getLogger(__name__)

DROP_CONNECTION = 0
ANSWER_NORMALLY = 200  # with delay_seconds: the real answer, late
MAX_DELAY_SECONDS = 60.0


class ArmedFault(Protocol):
    """What the shared machinery needs of a twin's ``Fault`` dataclass."""

    __dataclass_fields__: ClassVar[dict[str, Field[Any]]]
    status: int
    count: int
    after_processing: bool
    delay_seconds: float

    def matches(self, method: str, path: str) -> bool:
        """True when a request's method and path fit the fault's filters."""
        ...


FaultT = TypeVar("FaultT", bound=ArmedFault)


def check_fault(status: int, count: int, delay_seconds: float) -> None:
    """Refuse a fault no twin can carry out (``ValueError``); for a fault's ``__post_init__``."""
    if status == ANSWER_NORMALLY:
        if delay_seconds <= 0:
            raise ValueError("status 200 answers normally, so it needs delay_seconds")
    elif status != DROP_CONNECTION and not 400 <= status <= 599:
        raise ValueError(
            "fault status must be 0 (drop the connection), 400-599, or 200 with delay_seconds (answer late)"
        )
    if not 0 <= delay_seconds <= MAX_DELAY_SECONDS:
        raise ValueError(f"fault delay_seconds must be 0-{MAX_DELAY_SECONDS:g}")
    if count < 1:
        raise ValueError("fault count must be at least 1")


def fault_answers(fault: ArmedFault, *, processed: bool) -> bool:
    """At the fault's moment, wait out its delay; True when its answer replaces the operation's.

    Call it with ``processed=False`` before the operation and ``processed=True`` after it: a
    fault acts at exactly one of the two, so the delay is never served twice.
    """
    if fault.after_processing != processed:
        return False
    time.sleep(fault.delay_seconds)
    return fault.status != ANSWER_NORMALLY


class FaultInjector(Generic[FaultT]):
    """Armed faults, consumed first-in first-out by matching requests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[FaultT] = []

    def add(self, fault: FaultT) -> FaultT:
        """Arm a fault behind any already armed; returns it."""
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> int:
        """Disarm everything; returns how many faults were armed."""
        with self._lock:
            cleared = len(self._faults)
            self._faults.clear()
            return cleared

    def take(self, method: str, path: str) -> FaultT | None:
        """Consume one use of the first matching fault, if any (a copy of it, ``count=1``)."""
        with self._lock:
            taken = next((f for f in self._faults if f.matches(method, path)), None)
            if taken is None:
                return None
            taken.count -= 1
            if taken.count == 0:
                self._faults.remove(taken)
            fault = replace(taken, count=1)
        logger.info(
            "injecting fault method=%s path=%s status=%d after_processing=%s",
            method,
            path,
            fault.status,
            fault.after_processing,
        )
        return fault

    def pending(self) -> list[FaultT]:
        """The faults still armed (copies)."""
        with self._lock:
            return [replace(f) for f in self._faults]


class FaultControls(Generic[FaultT]):
    """The fault-arming methods a twin offers its tests, over its :class:`FaultInjector`.

    A twin sets ``fault_type`` (its ``Fault`` dataclass) and ``self._faults``.
    """

    fault_type: Callable[..., FaultT]
    _faults: FaultInjector[FaultT]

    def inject(self, fault: FaultT | None = None, /, **fields: Any) -> FaultT:
        """Arm ``fault``, or one built from ``fields`` (see the twin's ``Fault``)."""
        if fault is not None and fields:
            raise TypeError("pass a Fault or its fields, not both")
        return self._faults.add(fault if fault is not None else self.fault_type(**fields))

    def clear_faults(self) -> int:
        """Disarm every injected fault; returns how many were armed."""
        return self._faults.clear()

    @property
    def faults(self) -> list[FaultT]:
        """The faults still armed (copies)."""
        return self._faults.pending()
