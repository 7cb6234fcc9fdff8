"""Spans and canonical step log lines, through opentelemetry-api and stdlib logging only.

The core never configures exporters or handlers: the edge does (``handlers.observability``).
With nothing configured, the API's no-op tracer makes every span free. Each step gets one
span named ``rotation/<step>`` and one log line when it ends, with its outcome and duration;
context (rotation id, vault, secret, target) rides in contextvars via structlog, so every
line logged inside a rotation carries it.

Metrics (names and units follow OpenTelemetry's conventions; attributes are bounded sets:
outcomes, statuses, step names, target kinds, and for the per-secret gauges the vault and
secret names only): ``rotator.rotations``, ``rotator.rotation.duration`` (s),
``rotator.rotation.attempts``, ``rotator.step.duration`` (s), ``rotator.rotations.open``,
``rotator.secret.days_until_expiry`` (d), ``rotator.secret.days_since_rotation`` (d), plus the
counters of refusals, repairs, drift and published events. docs/observability.md lists them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager

import structlog
from opentelemetry import metrics, trace
from opentelemetry.context import Context
from opentelemetry.metrics import CallbackOptions, Observation
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
_dr_stale = meter.create_counter(
    "rotator.dr.stale", unit="{rotation}",
    description="Rotations of rotator-dr secrets: each leaves the break-glass DR file stale",
)
_events = meter.create_counter(
    "rotator.events.published", unit="{event}",
    description="Rotation events sent to the operator's Event Grid topic, by kind and result",
)
_rotations = meter.create_counter(
    "rotator.rotations", unit="{rotation}",
    description="Rotations closed, by outcome (succeeded, failed, superseded) and target kind",
)
_rotation_duration = meter.create_histogram(
    "rotator.rotation.duration", unit="s",
    description="From a rotation's start to its close, every attempt and wait included",
)
_attempts = meter.create_histogram(
    "rotator.rotation.attempts", unit="{attempt}",
    description="Worker attempts a rotation took, counted when it closes",
)
_step_duration = meter.create_histogram(
    "rotator.step.duration", unit="s",
    description="One step of one attempt (prepare, apply, verify, promote, propagate, ...)",
)
_PROPAGATOR = TraceContextTextMapPropagator()
#: What the last sweep saw, for the observable gauges below (replaced whole by each sweep).
_open_rotations: dict[str, int] = {}
_secret_ages: dict[tuple[str, str], tuple[float | None, float]] = {}


def _observe_open(_: CallbackOptions) -> Iterable[Observation]:
    return [Observation(count, {"rotator.status": status}) for status, count in _open_rotations.items()]


def _observe_expiry(_: CallbackOptions) -> Iterable[Observation]:
    return [Observation(until, {"rotator.vault": vault, "rotator.secret": secret})
            for (vault, secret), (until, _since) in _secret_ages.items() if until is not None]


def _observe_age(_: CallbackOptions) -> Iterable[Observation]:
    return [Observation(since, {"rotator.vault": vault, "rotator.secret": secret})
            for (vault, secret), (_until, since) in _secret_ages.items()]


meter.create_observable_gauge(
    "rotator.rotations.open", callbacks=[_observe_open], unit="{rotation}",
    description="Unfinished rotations by status (awaiting-retirement, awaiting-propagation, "
                "cleanup-pending, needs-repair, running), as of the last sweep")
meter.create_observable_gauge(
    "rotator.secret.days_until_expiry", callbacks=[_observe_expiry], unit="d",
    description="Each opted-in secret's current version: days until it expires (last sweep)")
meter.create_observable_gauge(
    "rotator.secret.days_since_rotation", callbacks=[_observe_age], unit="d",
    description="Each opted-in secret: days since its current version was written (last sweep)")


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
            _step_duration.record(time.perf_counter() - started,
                                  {"rotator.step": name, "rotator.outcome": "failed"})
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            span.set_attribute("rotator.error", type(exc).__name__)
            logger.warning(
                "step failed",
                # The error's message is logged once, where it is handled (the edge).
                extra={"step": name, "outcome": "failed", "error": type(exc).__name__,
                       "duration_ms": _elapsed_ms(started), **attributes},
            )
            raise
        _step_duration.record(time.perf_counter() - started,
                              {"rotator.step": name, "rotator.outcome": "ok"})
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


def count_dr_stale(*, vault: str) -> None:
    """Count one rotation that left the DR file behind Key Vault (``akv-rotator dr check``)."""
    _dr_stale.add(1, {"rotator.vault": vault})


def count_drift(*, vault: str, target: str) -> None:
    """Count one secret whose current credential no longer logs in (bounded attributes)."""
    _drift.add(1, {"rotator.vault": vault, "rotator.target": target})


def count_event_publication(kind: str, *, published: bool) -> None:
    """Count one rotation event sent (or given up on); ``kind`` is one of four names."""
    _events.add(1, {"rotator.event.kind": kind, "rotator.event.published": published})


def record_closed(*, outcome: str, target_kind: str, duration_seconds: float, attempts: int) -> None:
    """One rotation closed: counted by outcome and target kind, its duration and attempts."""
    attributes = {"rotator.outcome": outcome, "rotator.target.kind": target_kind}
    _rotations.add(1, attributes)
    _rotation_duration.record(max(duration_seconds, 0.0), attributes)
    _attempts.record(attempts, attributes)


def set_open_rotations(counts: Mapping[str, int]) -> None:
    """What the sweep found unfinished, by status (the gauge reports the latest sweep)."""
    _open_rotations.clear()
    _open_rotations.update(counts)


def set_secret_ages(vault: str, ages: Mapping[str, tuple[float | None, float]]) -> None:
    """One vault's opted-in secrets: (days until expiry or None, days since written)."""
    for key in [key for key in _secret_ages if key[0] == vault]:
        del _secret_ages[key]
    _secret_ages.update({(vault, secret): age for secret, age in ages.items()})
