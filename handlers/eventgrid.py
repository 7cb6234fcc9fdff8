"""Event Grid in: one Key Vault event per invocation, outcome to Event Grid's retry semantics.

- A transient failure (Key Vault or the target unreachable, throttled) or a configuration
  error raises, so the host answers 500 and Event Grid redelivers with its back-off.
- A permanent failure is logged once here and the event is acknowledged: retrying the same
  event cannot help, and a poison loop would only hide it. (The sweeper of the rotation
  protocol issue catches secrets whose rotation never happened.)
- Malformed events, events of other types and events from vaults outside the allowlist are
  acknowledged and logged, never retried.
"""

from __future__ import annotations

import logging
from typing import Any

import azure.functions as func
import structlog

from handlers.observability import configure_logging
from handlers.services import ServicesProvider
from rotation.errors import (
    ConcurrentRotation,
    ConfigurationError,
    PermanentError,
    TransientError,
)
from rotation.events import (
    MAX_FIELD_CHARS,
    InvalidEvent,
    KeyVaultEvent,
    UnhandledEvent,
    parse_event,
)
from rotation.retry import deadline

logger = logging.getLogger(__name__)
#: Event Grid waits 30 s for an answer, then counts the delivery as failed and retries it
#: ("Event Grid message delivery and retry"). No in-call retry starts whose wait would end
#: less than INVOCATION_LAST_CALL_SECONDS before this budget: a throttled call answers in
#: milliseconds, so the invocation answers in time (a call that hangs is still bounded by its
#: own timeout). bench/burst.py measured invocations of 40-50 s without it, each a failed
#: delivery. Failing sooner is no better: the rotation's next chance is then Event Grid's
#: next delivery, 10 s, 30 s, 1 min, 5 min later, and a burst stalls on that schedule.
INVOCATION_BUDGET_SECONDS = 25.0
INVOCATION_LAST_CALL_SECONDS = 5.0


def handle_event(event: func.EventGridEvent | func.CloudEvent,
                 services: ServicesProvider) -> None:
    """Parse, decide, rotate; raise only when Event Grid should deliver the event again.

    The worker's converter hands over an ``EventGridEvent`` for the Event Grid schema and a
    ``CloudEvent`` for CloudEvents 1.0; both go through the one parser. Whatever a sender
    put in the event, reading it never raises: an unreadable event is acknowledged with one
    log line saying why.
    """
    configure_logging()
    try:
        envelope = envelope_of(event)
    except Exception as exc:  # a converter's object we do not know: say so, never raise
        logger.error("event rejected", extra={"outcome": "rejected",
                                              "detail": f"unreadable event object: {type(exc).__name__}"})
        return
    with structlog.contextvars.bound_contextvars(event_id=_loggable(envelope["event_id"]),
                                                 event_type=_loggable(envelope["event_type"])):
        try:
            parsed = parse_event(**envelope)
        except InvalidEvent as exc:
            logger.error("event rejected", extra={"outcome": "rejected", "detail": str(exc)})
            return
        except Exception as exc:
            logger.error("event rejected", extra={"outcome": "rejected",
                                                  "detail": f"unreadable event: {type(exc).__name__}"})
            return
        if isinstance(parsed, UnhandledEvent):
            logger.info("event ignored", extra={"outcome": "ignored", "reason": parsed.reason})
            return
        with structlog.contextvars.bound_contextvars(
            vault=parsed.vault, secret=parsed.secret, version=parsed.version
        ):
            _decide(parsed, services)


def envelope_of(event: func.EventGridEvent | func.CloudEvent) -> dict[str, Any]:
    """The parser's arguments from either schema (CloudEvents: type, source, time).

    ``func.CloudEvent`` exists from azure-functions 1.25; a worker that loads an older
    library of its own (ADR 0006) hands over only ``EventGridEvent``, so the class is looked
    up, never assumed.
    """
    cloud_event = getattr(func, "CloudEvent", None)
    if cloud_event is not None and isinstance(event, cloud_event):
        return {"event_id": event.id, "event_type": event.type, "topic": event.source,
                "subject": event.subject, "data": event.get_json(), "event_time": event.time}
    grid: Any = event  # an EventGridEvent, or whatever an older converter made
    return {"event_id": grid.id, "event_type": grid.event_type, "topic": grid.topic,
            "subject": grid.subject, "data": grid.get_json(), "event_time": grid.event_time}


def _loggable(value: Any) -> str | None:
    """An envelope field fit for a log line's context: text, and not too long."""
    return value[:MAX_FIELD_CHARS] if isinstance(value, str) else None


def _decide(parsed: KeyVaultEvent, services: ServicesProvider) -> None:
    try:
        built = services()
        with deadline(INVOCATION_BUDGET_SECONDS, per_call_seconds=INVOCATION_LAST_CALL_SECONDS):
            outcome = built.rotation.handle_event(parsed)
    except TransientError as exc:
        logger.warning("event will be retried", extra={"outcome": "retry", "detail": str(exc)})
        raise
    except ConcurrentRotation as exc:
        logger.info("event ignored", extra={"outcome": "ignored", "reason": str(exc),
                                            "running_rotation_id": exc.rotation_id})
        return
    except ConfigurationError as exc:
        # Fixing a setting makes the same event succeed, so let Event Grid keep it.
        logger.error("configuration error; event will be retried",
                     extra={"outcome": "retry", "detail": str(exc)})
        raise
    except PermanentError as exc:
        logger.error("rotation failed", extra={"outcome": "failed", "error": type(exc).__name__,
                                               "detail": str(exc)})
        return
    fields: dict[str, object] = {"outcome": outcome.decision, "reason": outcome.reason}
    if outcome.record is not None:
        fields.update(rotation_id=outcome.record.rotation_id,
                      old_version=outcome.record.from_version,
                      new_version=outcome.record.new_version)
    warn = ("refused", "not-rotatable", "needs-repair", "cleanup-pending", "superseded")
    level = logging.WARNING if outcome.decision in warn else logging.INFO
    logger.log(level, "event handled", extra=fields)

