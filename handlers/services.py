"""The composition root: builds settings and SDK clients on first use, then reuses them.

Nothing here runs at import time. The first invocation reads the app settings; a missing or
malformed one raises :class:`~rotation.errors.ConfigurationError` naming every problem, and
the next invocation tries again (so fixing the setting needs no restart). Key Vault clients
are built per vault on first use and kept for the life of the worker. The services
themselves are composed in :mod:`rotation.composition` (the CLI builds the same). Tests call
:func:`reset_services`, and may pass a step observer to :func:`build_services`.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

from handlers.observability import configure_logging, configure_tracing
from rotation.attempt import StepObserver
from rotation.composition import Services, build_services, worker_id
from rotation.settings import Settings

__all__ = ["Services", "ServicesProvider", "build_services", "get_services", "reset_services",
           "set_step_observer", "worker_id"]

ServicesProvider = Callable[[], Services]

_lock = threading.Lock()
_services: Services | None = None
_observer: StepObserver | None = None


def get_services() -> Services:
    """The process-wide services, built from ``os.environ`` on first use."""
    global _services
    if _services is None:
        with _lock:
            if _services is None:
                configure_logging()
                settings = Settings.from_env(os.environ)
                configure_logging(settings.log_level)
                configure_tracing(settings.appinsights_connection_string)
                _services = build_services(settings, observer=_observer)
    return _services


def set_step_observer(observer: StepObserver | None) -> None:
    """Install an observer on the next services built (the fault-injection tests' seam)."""
    global _observer
    _observer = observer


def reset_services() -> None:
    """Drop the built services so the next call re-reads the environment (tests)."""
    global _services
    with _lock:
        _services = None
