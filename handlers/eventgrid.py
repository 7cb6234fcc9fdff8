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
from rotation.events import InvalidEvent, KeyVaultEvent, UnhandledEvent, parse_event

logger = logging.getLogger(__name__)


def handle_event(event: func.EventGridEvent, services: ServicesProvider) -> None:
    """Parse, decide, rotate; raise only when Event Grid should deliver the event again."""
    configure_logging()
    with structlog.contextvars.bound_contextvars(event_id=event.id, event_type=event.event_type):
        try:
            parsed = parse_event(
                event_id=event.id, event_type=event.event_type, topic=event.topic,
                subject=event.subject, data=event.get_json(), event_time=event.event_time,
            )
        except InvalidEvent as exc:
            logger.error("event rejected", extra={"outcome": "rejected", "detail": str(exc)})
            return
        if isinstance(parsed, UnhandledEvent):
            logger.info("event ignored", extra={"outcome": "ignored", "reason": parsed.reason})
            return
        with structlog.contextvars.bound_contextvars(
            vault=parsed.vault, secret=parsed.secret, version=parsed.version
        ):
            _decide(parsed, services)


def _decide(parsed: KeyVaultEvent, services: ServicesProvider) -> None:
    try:
        outcome = services().rotation.handle_event(parsed)
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
    level = logging.WARNING if outcome.decision == "refused" else logging.INFO
    logger.log(level, "event handled", extra=fields)

