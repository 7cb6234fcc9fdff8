"""The standalone CLI's edge, shared by ``python -m twins.keyvault`` and ``python -m twins.jenkins``.

A parent process (the demo, a test in another process) starts a twin's CLI, reads what it
prints on stdout, and later stops it with SIGINT or SIGTERM; the CLI must then stop the twin
cleanly and exit 0. Logs go to stderr so stdout holds only the lines the parent reads.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType

from twins.http.lifecycle import HTTPSTwin

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
WAKE_INTERVAL = 0.5  # how often the main thread wakes, so Python can run the signal handler


def configure_logging(level: str) -> None:
    """Log at ``level`` (any case) to stderr, keeping stdout for the parent process."""
    logging.basicConfig(level=level.upper(), format=LOG_FORMAT, stream=sys.stderr)


def serve_until_signalled(twin: HTTPSTwin, announce: Callable[[], None]) -> int:
    """Start ``twin``, ``announce()`` how to reach it, serve until SIGINT/SIGTERM, stop; returns 0.

    The handlers are installed before the twin starts, so a signal sent as soon as the parent
    has read the announcement cannot kill the process without stopping the twin.
    """
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    twin.start()
    try:
        announce()
        sys.stdout.flush()
        while not stop.wait(WAKE_INTERVAL):
            pass
    finally:
        twin.stop()
    return 0
