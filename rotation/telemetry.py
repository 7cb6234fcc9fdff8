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
from opentelemetry import metrics, trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

logger = logging.getLogger("rotation.steps")
tracer = trace.get_tracer("akv-rotator")
meter = metrics.get_meter("akv-rotator")
_repairs = meter.create_counter(
    "rotator.rotation.needs_repair", unit="{rotation}",
    description="Rotations that could prove neither roll-forward nor roll-back and stay open",
)
_drift = meter.create_counter(
    "rotator.credential.drift", unit="{secret}",
    description="Opted-in secrets whose current credential no longer logs in",
)
_refusals = meter.create_counter(
    "rotator.binding.refusals", unit="{refusal}",
    description="Secrets whose tags selected a target that does not admit them",
)
_events = meter.create_counter(
    "rotator.events.published", unit="{event}",
    description="Rotation events sent to the operator's Event Grid topic, by kind and result",
)
_PROPAGATOR = TraceContextTextMapPropagator()


@contextmanager
def rotation_context(**fields: str) -> Iterator[None]:
    """Bind ``fields`` to every log line and span within the block."""
    with structlog.contextvars.bound_contextvars(**fields):
        yield


def trace_parent_of(span: Span) -> str | None:
    """The W3C ``traceparent`` of ``span``, or None when nothing is being traced."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=trace.set_span_in_context(span))
    return carrier.get("traceparent")


def resumed_context(trace_parent: str | None) -> Context | None:
    """The context that makes a resumed attempt's spans part of the rotation's first trace."""
    if not trace_parent:
        return None
    return _PROPAGATOR.extract({"traceparent": trace_parent})


@contextmanager
def step(name: str, *, parent: Context | None = None, **attributes: str) -> Iterator[Span]:
    """One span ``rotation/<name>`` and one log line, whether the step succeeds or fails.

    ``parent`` continues an earlier attempt's trace, so that a rotation resumed by another
    worker is still one trace.
    """
    started = time.perf_counter()
    context = structlog.contextvars.get_contextvars()
    span_attributes = {f"rotator.{key}": str(value) for key, value in context.items()}
    span_attributes.update({f"rotator.{key}": value for key, value in attributes.items()})
    with tracer.start_as_current_span(f"rotation/{name}", context=parent,
                                      attributes=span_attributes) as span:
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


def count_refusal(*, reason: str, target: str) -> None:
    """Count one refused binding; ``reason`` and ``target`` are bounded sets of names."""
    _refusals.add(1, {"rotator.refusal.reason": reason, "rotator.target": target})


def count_repair() -> None:
    """Count one rotation entering needs-repair."""
    _repairs.add(1)


def count_drift(*, vault: str, target: str) -> None:
    """Count one secret whose current credential no longer logs in (bounded attributes)."""
    _drift.add(1, {"rotator.vault": vault, "rotator.target": target})


def count_event_publication(kind: str, *, published: bool) -> None:
    """Count one rotation event sent (or given up on); ``kind`` is one of four names."""
    _events.add(1, {"rotator.event.kind": kind, "rotator.event.published": published})
