"""Key Vault events in the Event Grid schema, and their delivery off the request path.

Event Grid delivers Key Vault events asynchronously, at least once, one event per POST as a
JSON array, and retries non-2xx answers (protocols.md sections 1.2-1.5). The twin keeps the
parts a handler can observe:

- the envelope and ``data`` exactly as documented (PascalCase keys, ``subject`` = the secret
  name, ``topic`` = the vault's ARM id, NBF/EXP as integer seconds or ``null``);
- the webhook headers (``aeg-event-type: Notification``, ``aeg-subscription-name``,
  ``aeg-delivery-count`` counting earlier attempts, so 0 on the first, as captured
  deliveries show, ``aeg-data-version``, ``aeg-metadata-version``);
- success means 200-204 only; 400, 401, 403 and 413 are dropped at once, as Event Grid
  does not retry them; anything else, or a connection error, is retried a few times with a
  short backoff and then dropped with a log line (Event Grid's schedule of minutes to hours
  is compressed to fractions of a second).

Delivery runs on one background thread so a slow or failing endpoint, or a subscriber that
calls back into the twin, never blocks the request that caused the event.
"""

from __future__ import annotations

import http.client
import json
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import urlsplit

logger = logging.getLogger(__name__)

NEW_VERSION_CREATED: Final = "Microsoft.KeyVault.SecretNewVersionCreated"
NEAR_EXPIRY: Final = "Microsoft.KeyVault.SecretNearExpiry"
EXPIRED: Final = "Microsoft.KeyVault.SecretExpired"
SECRET_EVENT_TYPES: Final = frozenset({NEW_VERSION_CREATED, NEAR_EXPIRY, EXPIRED})

SUBSCRIPTION_NAME = "KV-TWIN"
SUCCESS_STATUSES = range(200, 205)
# Webhook answers Event Grid does not retry: 400 and 413 are dead-lettered at once, 401 and 403
# are not retried either (delivery-and-retry.md, protocols.md section 1.5).
NOT_RETRIED_STATUSES = frozenset({400, 401, 403, 413})

Event = dict[str, Any]
Subscriber = Callable[[Event], None]


def event_time(moment: datetime | None = None) -> str:
    """ISO 8601 UTC with seven fractional digits and ``Z``, like ``2019-07-25T01:08:33.1036736Z``."""
    moment = moment or datetime.now(UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


def build_secret_event(
    *,
    event_type: str,
    topic: str,
    vault_url: str,
    vault_name: str,
    secret_name: str,
    version: str,
    nbf: int | None,
    exp: int | None,
) -> Event:
    """Build one Event Grid-schema event for a secret version.

    ``Id`` carries the twin's URL (the real one carries ``https://{vault}.vault.azure.net``),
    so a handler can fetch the exact version from the twin it came from.
    """
    if event_type not in SECRET_EVENT_TYPES:
        raise ValueError(f"unsupported event type {event_type!r}")
    return {
        "id": str(uuid.uuid4()),
        "topic": topic,
        "subject": secret_name,
        "eventType": event_type,
        "eventTime": event_time(),
        "data": {
            "Id": f"{vault_url}/secrets/{secret_name}/{version}",
            "VaultName": vault_name,
            "ObjectType": "Secret",
            "ObjectName": secret_name,
            "Version": version,
            "NBF": nbf,
            "EXP": exp,
        },
        "dataVersion": "1",
        "metadataVersion": "1",
    }


class EventDispatcher:
    """Queue of events delivered to subscribers and an optional webhook, on one thread."""

    def __init__(
        self,
        event_url: str | None = None,
        *,
        attempts: int = 4,
        backoff: float = 0.1,
        timeout: float = 5.0,
    ) -> None:
        if event_url is not None and urlsplit(event_url).scheme not in ("http", "https"):
            raise ValueError("event_url must be an http(s) URL")
        self.event_url = event_url
        self._attempts = attempts
        self._backoff = backoff
        self._timeout = timeout
        self._queue: queue.Queue[Event | None] = queue.Queue()
        self._subscribers: list[Subscriber] = []
        self._emitted: list[Event] = []
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._pending = 0
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the delivery thread (idempotent)."""
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._run, name="kv-twin-event-delivery", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop after the events already queued; give up waiting after ``timeout`` seconds."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout)

    def subscribe(self, callback: Subscriber) -> None:
        """Call ``callback(event)`` for every event published from now on."""
        with self._lock:
            self._subscribers.append(callback)

    def publish(self, event: Event) -> None:
        """Record the event and queue it; returns at once."""
        with self._lock:
            self._emitted.append(event)
            self._pending += 1
        self._queue.put(event)

    @property
    def emitted(self) -> list[Event]:
        """Every event published so far (a copy)."""
        with self._lock:
            return list(self._emitted)

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Block until every published event has been handled; False on timeout.

        Must not be called from a subscriber: it would wait for itself.
        """
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    def _run(self) -> None:
        while True:
            event = self._queue.get()
            if event is None:
                return
            try:
                self._deliver(event)
            finally:
                with self._idle:
                    self._pending -= 1
                    self._idle.notify_all()

    def _deliver(self, event: Event) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for callback in subscribers:
            try:
                callback(event)
            except Exception:
                logger.exception("event subscriber failed event_id=%s", event["id"])
        if self.event_url:
            self._post(self.event_url, event)

    def _post(self, url: str, event: Event) -> None:
        body = json.dumps([event]).encode("utf-8")
        for attempt in range(self._attempts):
            if attempt:
                time.sleep(self._backoff * 2 ** (attempt - 1))
            headers = {
                "Content-Type": "application/json; charset=utf-8",
                "aeg-event-type": "Notification",
                "aeg-subscription-name": SUBSCRIPTION_NAME,
                "aeg-delivery-count": str(attempt),
                "aeg-data-version": str(event.get("dataVersion", "1")),
                "aeg-metadata-version": str(event.get("metadataVersion", "1")),
            }
            try:
                status = self._send(url, body, headers)
            except (OSError, http.client.HTTPException) as exc:
                logger.info(
                    "event delivery failed event_id=%s attempt=%d error=%s",
                    event["id"],
                    attempt + 1,
                    type(exc).__name__,
                )
                continue
            if status in SUCCESS_STATUSES:
                return
            if status in NOT_RETRIED_STATUSES:
                logger.warning("event dropped, status not retried event_id=%s status=%d", event["id"], status)
                return
            logger.info(
                "event delivery rejected event_id=%s attempt=%d status=%d",
                event["id"],
                attempt + 1,
                status,
            )
        logger.warning(
            "event dropped after %d attempts event_id=%s type=%s subject=%s",
            self._attempts,
            event["id"],
            event["eventType"],
            event["subject"],
        )

    def _send(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        """POST once with http.client, which keeps header names as written (lower-case aeg-*)."""
        parts = urlsplit(url)
        connection_type = (
            http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        )
        connection = connection_type(parts.hostname or "localhost", parts.port, timeout=self._timeout)
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        try:
            connection.request("POST", target, body=body, headers=headers)
            response = connection.getresponse()
            response.read()
            return response.status
        finally:
            connection.close()
