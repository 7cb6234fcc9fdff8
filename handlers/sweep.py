"""Timers in: the sweeper (``ROTATOR_SWEEP_SCHEDULE``) and the credential health check
(``ROTATOR_HEALTH_SCHEDULE``), each on the schedule in its app setting.

Failures on single secrets are logged by the sweeper and do not fail the run; a configuration
error does, so it shows as a failed invocation.
"""

from __future__ import annotations

import logging

import azure.functions as func
import structlog

from handlers.observability import configure_logging
from handlers.services import ServicesProvider

logger = logging.getLogger(__name__)


def run_sweep(timer: func.TimerRequest, services: ServicesProvider) -> None:
    """Resume stalled rotations, retire what is due, rotate what events missed."""
    configure_logging()
    with structlog.contextvars.bound_contextvars(trigger="sweeper"):
        if timer.past_due:
            logger.info("sweep is running late", extra={"past_due": True})
        services().sweeper.sweep()


def run_health_check(timer: func.TimerRequest, services: ServicesProvider) -> None:
    """Prove, read-only, that every opted-in secret's current credential still logs in."""
    configure_logging()
    with structlog.contextvars.bound_contextvars(trigger="health"):
        if timer.past_due:
            logger.info("health check is running late", extra={"past_due": True})
        services().health.check()
