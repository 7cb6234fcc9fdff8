"""Queue in: the sweeper's work items (:mod:`rotation.queue`), one per invocation.

- Transient failures before a rotation is journaled (Key Vault throttled or unreachable, the
  journal unavailable) raise, so the host makes the message visible again; after
  ``maxDequeueCount`` deliveries (host.json) it moves it to ``<queue>-poison``. The error is
  kept in the journal first, so the poison handler can say why.
- Permanent failures (a refused binding, a secret gone, tags wrong) are logged once and the
  message is done: redelivering cannot help, and the sweeper queues the secret again later.
- A malformed message is logged and dropped, never retried.
- The poison handler records a failed rotation with the reason, which history (``GET
  /api/secrets/{name}/rotations``) and status (``akv-rotator status``) show; unless Key Vault
  throttled every delivery: throttling alone fails no rotation, so the work is only logged,
  and the sweeper queues it again once its queued mark expires (an hour).
"""

from __future__ import annotations

import functools
import json
import logging
from pathlib import Path

import azure.functions as func
import structlog

from handlers.observability import configure_logging
from handlers.services import ServicesProvider
from rotation.errors import ConfigurationError, InvalidRequest, PermanentError, RotatorError
from rotation.queue import WorkItem

logger = logging.getLogger(__name__)
HOST_JSON = Path(__file__).resolve().parents[1] / "host.json"
DEFAULT_MAX_DEQUEUE_COUNT = 5


def handle_work(message: func.QueueMessage, services: ServicesProvider) -> None:
    """Run one queued piece of work through the rotation service."""
    configure_logging()
    item = _decoded(message)
    if item is None:
        return
    with structlog.contextvars.bound_contextvars(trigger="queue", vault=item.vault,
                                                 secret=item.secret, queue_message=message.id):
        built = services()
        try:
            record = built.rotation.run_queued(item, f"queue message {message.id}")
        except ConfigurationError:
            raise
        except PermanentError as exc:
            logger.warning("queued work refused", extra={"outcome": "refused", "kind": item.kind,
                                                         "error": type(exc).__name__,
                                                         "detail": str(exc)})
            return
        except RotatorError as exc:
            built.journal.note_queue_failure(item.vault, item.secret, item.key,
                                             f"{type(exc).__name__}: {exc}")
            logger.warning("queued work failed; the queue delivers it again", extra={
                "outcome": "retry", "kind": item.kind, "error": type(exc).__name__,
                "detail": str(exc), "dequeue_count": message.dequeue_count})
            raise
        logger.info("queued work done", extra={
            "outcome": record.status if record is not None else "nothing-to-do", "kind": item.kind,
            "rotation_id": record.rotation_id if record is not None else None})


def handle_poison(message: func.QueueMessage, services: ServicesProvider) -> None:
    """Work the host gave up on: record it where operators look."""
    configure_logging()
    item = _decoded(message)
    if item is None:
        return
    with structlog.contextvars.bound_contextvars(trigger="queue-poison", vault=item.vault,
                                                 secret=item.secret, queue_message=message.id):
        built = services()
        deliveries = max_dequeue_count()
        if built.rotation.poisoned_by_throttling(item):
            logger.warning("queued work poisoned by throttling alone: no failed rotation; the "
                           "sweeper queues it again", extra={
                               "outcome": "throttled", "kind": item.kind, "deliveries": deliveries})
            return
        record = built.rotation.record_poisoned(item, f"queue message {message.id} (poisoned)",
                                                deliveries)
        logger.error("queued work poisoned", extra={
            "outcome": "failed", "kind": item.kind, "deliveries": deliveries,
            "rotation_id": record.rotation_id if record is not None else None,
            "detail": record.last_error if record is not None else "the rotation keeps its own error"})


@functools.cache
def max_dequeue_count() -> int:
    """host.json's ``extensions.queues.maxDequeueCount`` (the host's default, 5, if unset):
    how many deliveries the host made before it moved a message to the poison queue."""
    try:
        document = json.loads(HOST_JSON.read_text())
        value = document["extensions"]["queues"]["maxDequeueCount"]
    except (OSError, ValueError, KeyError, TypeError):
        return DEFAULT_MAX_DEQUEUE_COUNT
    return value if isinstance(value, int) and value > 0 else DEFAULT_MAX_DEQUEUE_COUNT


def _decoded(message: func.QueueMessage) -> WorkItem | None:
    try:
        return WorkItem.decode(message.get_body())
    except InvalidRequest as exc:
        logger.warning("work message rejected", extra={"outcome": "rejected", "detail": str(exc),
                                                       "queue_message": message.id})
        return None
