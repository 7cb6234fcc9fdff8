"""Rotation events out: CloudEvents about each rotation, to an Event Grid topic of the operator's.

Other systems (a CMDB, a chat channel, an audit store) learn what the rotator did without
polling its HTTP API. Each event is a CloudEvent 1.0 of type ``akv-rotator.rotation.<kind>``:

``succeeded``  the rotation finished (new version current, previous credential handled)
``failed``     it closed failed (nothing changed, or put back and verified)
``propagated`` its Kubernetes consumers confirmed the new version (or the wait ended)
``retired``    the previous credential was ended

``source`` is ``akv-rotator/<vault>``, ``subject`` the secret's name, ``id``
``<rotation id>.<kind>`` (the same on every attempt, so a consumer can drop a duplicate), and
``data`` ids, versions, status, trigger and step timings — never a value.

Publishing is best effort: bounded retries (the one retry layer, ADR 0002) on 408/429/5xx and
network errors, then a logged and counted failure; it never fails or delays a rotation beyond
those retries. The engine journals each kind it published, so a resumed rotation does not
publish it again. This is the only module that imports ``azure.eventgrid``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal

from azure.core.credentials import TokenCredential
from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError
from azure.core.messaging import CloudEvent
from azure.eventgrid import EventGridPublisherClient

# The basic-topic client itself. azure-eventgrid 4.x's unified EventGridPublisherClient drops
# every keyword (transport, retry, timeouts, connection_verify) when it builds this one for a
# basic topic (azure/eventgrid/_patch.py), which would stack the SDK's three retries on ours
# and ignore the operator's CA bundle; built directly, it takes them.
from azure.eventgrid._legacy import EventGridPublisherClient as BasicTopicClient

from rotation import telemetry
from rotation.errors import TransientError
from rotation.journal.model import RotationRecord, public_view
from rotation.retry import call_with_retry
from rotation.settings import RetrySettings

logger = logging.getLogger(__name__)
EventKind = Literal["succeeded", "failed", "propagated", "retired"]
TYPE_PREFIX = "akv-rotator.rotation."
_RETRYABLE = frozenset({408, 429, 500, 502, 503, 504})


class Publisher:
    """Sends one rotation event; ``publish`` answers whether it was accepted, never raises."""

    def __init__(self, send: Callable[[CloudEvent[Any]], None], *, retry: RetrySettings,
                 clock: Callable[[], datetime]) -> None:
        self._send = send
        self._retry = retry
        self._clock = clock

    def publish(self, kind: EventKind, record: RotationRecord) -> bool:
        event: CloudEvent[Any] = CloudEvent(
            source=f"akv-rotator/{record.vault}", type=TYPE_PREFIX + kind, subject=record.secret,
            id=f"{record.rotation_id}.{kind}", time=self._clock(), data=event_data(record),
            datacontenttype="application/json")
        try:
            call_with_retry(lambda: self._attempt(event), policy=self._retry,
                            what=f"publish {kind} event")
        except Exception as exc:  # best effort: a rotation never fails for its announcement
            detail = str(exc) if isinstance(exc, TransientError) else type(exc).__name__
            logger.warning("rotation event not published", extra={
                "outcome": "event-not-published", "event_type": event.type, "detail": detail})
            telemetry.count_event_publication(kind, published=False)
            return False
        logger.info("rotation event published", extra={"outcome": "event-published",
                                                         "event_type": event.type})
        telemetry.count_event_publication(kind, published=True)
        return True

    def _attempt(self, event: CloudEvent[Any]) -> None:
        try:
            self._send(event)
        except (ServiceRequestError, ServiceResponseError) as exc:
            raise TransientError(f"event topic unreachable: {type(exc).__name__}") from None
        except HttpResponseError as exc:
            if exc.status_code in _RETRYABLE:
                retry_after = _retry_after(exc)
                raise TransientError(f"event topic answered HTTP {exc.status_code}",
                                     retry_after=retry_after) from None
            raise


def build_publisher(endpoint: str, credential: TokenCredential, *, namespace_topic: str | None,
                    ca_bundle: str | None, timeout_seconds: float, retry: RetrySettings,
                    clock: Callable[[], datetime]) -> Publisher:
    """A publisher to a basic topic (``namespace_topic`` None) or a namespace topic."""
    options: dict[str, Any] = {"retry_total": 0, "connection_timeout": timeout_seconds,
                               "read_timeout": timeout_seconds}
    if ca_bundle:
        options["connection_verify"] = ca_bundle
    client: EventGridPublisherClient | BasicTopicClient
    if namespace_topic:
        client = EventGridPublisherClient(endpoint, credential, namespace_topic=namespace_topic,
                                          **options)
    else:
        client = BasicTopicClient(endpoint, credential, **options)
    return Publisher(lambda event: client.send([event]), retry=retry, clock=clock)


def event_data(record: RotationRecord) -> dict[str, Any]:
    """What an event says of a rotation: the public view's ids, versions, status, trigger,
    target and step timings (no values: the public view holds none), and propagation counts."""
    view = public_view(record)
    keep = ("rotationId", "vault", "secret", "status", "step", "oldVersion", "newVersion",
            "newExpiry", "attempts", "lastError", "target", "trigger", "startedAt", "finishedAt",
            "durationSeconds", "steps", "purpose")
    data = {key: view[key] for key in keep}
    if record.propagation is not None:
        states = [c.state for c in record.propagation.consumers]
        data["propagation"] = {"consumers": len(states), "confirmed": states.count("confirmed"),
                               "warning": record.propagation.warning}
    return data


def _retry_after(exc: HttpResponseError) -> float | None:
    headers = getattr(exc.response, "headers", None) or {}
    try:
        return float(headers.get("Retry-After", ""))
    except ValueError:
        return None
