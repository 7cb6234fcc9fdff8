"""The twin's clock: a time source plus an offset tests can move.

Jenkins decides expiry by calendar date in the controller's time zone (``LocalDate.now()``
in ``ApiTokenStore.HashedToken.isExpired``), so a test that wants to see a token expire must
move the twin's "today" without waiting days. Any time source works (``time.time`` by
default); :meth:`TwinClock.advance` shifts it, forwards or back.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, tzinfo


class TwinClock:
    """``source()`` (Unix seconds) plus an adjustable offset, read in ``tz``."""

    def __init__(self, source: Callable[[], float] = time.time, tz: tzinfo = UTC) -> None:
        self._source = source
        self._tz = tz
        self._lock = threading.Lock()
        self._offset = 0.0

    def now(self) -> datetime:
        """The twin's current time, timezone-aware."""
        with self._lock:
            offset = self._offset
        return datetime.fromtimestamp(self._source() + offset, self._tz)

    def today(self) -> date:
        """The twin's calendar date: what Jenkins' ``LocalDate.now()`` would say."""
        return self.now().date()

    def advance(self, delta: timedelta | float) -> datetime:
        """Move the clock by ``delta`` (seconds or a timedelta; negative goes back); returns now."""
        seconds = delta.total_seconds() if isinstance(delta, timedelta) else float(delta)
        with self._lock:
            self._offset += seconds
        return self.now()
