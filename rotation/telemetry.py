"""Spans and canonical step log lines, through opentelemetry-api and stdlib logging only.

The core never configures exporters or handlers: the edge does (``handlers.observability``).
With nothing configured, the API's no-op tracer makes every span free. Each step gets one
span named ``rotation/<step>`` and one log line when it ends, with its outcome and duration;
context (rotation id, vault, secret, target) rides in contextvars via structlog, so every
line logged inside a rotation carries it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

import structlog
from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode

logger = logging.getLogger("rotation.steps")
tracer = trace.get_tracer("akv-rotator")


@contextmanager
def rotation_context(**fields: str) -> Iterator[None]:
    """Bind ``fields`` to every log line and span within the block."""
    with structlog.contextvars.bound_contextvars(**fields):
        yield


@contextmanager
def step(name: str, **attributes: str) -> Iterator[Span]:
    """One span ``rotation/<name>`` and one log line, whether the step succeeds or fails."""
    started = time.perf_counter()
    context = structlog.contextvars.get_contextvars()
    span_attributes = {f"rotator.{key}": str(value) for key, value in context.items()}
    span_attributes.update({f"rotator.{key}": value for key, value in attributes.items()})
    with tracer.start_as_current_span(f"rotation/{name}", attributes=span_attributes) as span:
        try:
            yield span
        except Exception as exc:
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            span.set_attribute("rotator.error", type(exc).__name__)
            logger.warning(
                "step failed",
                # The error's message is logged once, where it is handled (the edge).
                extra={"step": name, "outcome": "failed", "error": type(exc).__name__,
                       "duration_ms": _elapsed_ms(started), **attributes},
            )
            raise
        logger.info(
            "step finished",
            extra={"step": name, "outcome": "ok", "duration_ms": _elapsed_ms(started), **attributes},
        )


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)
