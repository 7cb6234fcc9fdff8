"""The sweeper's work queue: one Storage queue message per piece of due work.

The sweeper only decides (:mod:`rotation.sweeper`); the Functions host's queue trigger runs
each message through the same service path events take, scaled out by the platform. The
only importer of azure-storage-queue.

A message is a small JSON document, base64-encoded as the host's queue trigger reads by
default (``extensions.queues.messageEncoding``)::

    {"kind": "rotate", "vault": "kv-prod", "secret": "app-db", "stamp": "1764655200"}
    {"kind": "resume", "vault": "kv-prod", "secret": "app-db", "rotationId": "<32 hex>",
     "stamp": "1764655200123"}

The ``stamp`` makes the work's identity: for a rotation, the current version's creation time
as the vault's listing gave it (the listing carries no version ids, and reading each secret
would read its value); for a resumption, when the rotation last changed. With the vault and
the secret it names the work, so the journal marks it queued once
(:meth:`rotation.journal.base.Journal.mark_queued`).
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from typing import Any, Literal

from rotation.binding import SECRET_NAME
from rotation.errors import InvalidRequest, TransientError
from rotation.settings import QueueSettings

WorkKind = Literal["rotate", "resume"]
_ROTATION_ID = re.compile(r"^[0-9a-f]{32}$")
_VAULT = re.compile(r"^[0-9a-z-]{3,24}$")
_STAMP = re.compile(r"^[0-9]{1,16}$")
_MAX_MESSAGE = 1024


@dataclass(frozen=True, slots=True)
class WorkItem:
    """One piece of due work: rotate a secret's listed version, or resume a rotation."""

    kind: WorkKind
    vault: str
    secret: str
    stamp: str                      # see the module's docstring
    rotation_id: str | None = None  # resume

    @property
    def key(self) -> str:
        """Names the work within its secret, for the journal's queued mark."""
        if self.kind == "rotate":
            return f"rotate-{self.stamp}"
        return f"resume-{self.rotation_id}-{self.stamp}"

    def encode(self) -> str:
        body: dict[str, str] = {"kind": self.kind, "vault": self.vault, "secret": self.secret,
                                "stamp": self.stamp}
        if self.rotation_id is not None:
            body["rotationId"] = self.rotation_id
        return json.dumps(body, separators=(",", ":"))

    @classmethod
    def decode(cls, raw: bytes | str) -> WorkItem:
        """Parse a message; InvalidRequest saying what is wrong for anything else."""
        if len(raw) > _MAX_MESSAGE:
            raise InvalidRequest(f"a work message is at most {_MAX_MESSAGE} bytes")
        try:
            body: Any = json.loads(raw)
        except (ValueError, RecursionError):
            raise InvalidRequest("a work message is a JSON object") from None
        if not isinstance(body, dict):
            raise InvalidRequest("a work message is a JSON object")
        kind, vault, secret = body.get("kind"), body.get("vault"), body.get("secret")
        if kind not in ("rotate", "resume"):
            raise InvalidRequest("'kind' must be rotate or resume")
        if not isinstance(vault, str) or not _VAULT.fullmatch(vault):
            raise InvalidRequest("'vault' must be a vault name")
        if not isinstance(secret, str) or not SECRET_NAME.fullmatch(secret):
            raise InvalidRequest("'secret' must be a secret name")
        stamp = body.get("stamp")
        if not isinstance(stamp, str) or not _STAMP.fullmatch(stamp):
            raise InvalidRequest("'stamp' must be digits, as a string")
        if kind == "rotate":
            return cls("rotate", vault, secret, stamp)
        rotation_id = body.get("rotationId")
        if not isinstance(rotation_id, str) or not _ROTATION_ID.fullmatch(rotation_id):
            raise InvalidRequest("'rotationId' must be 32 hex characters")
        return cls("resume", vault, secret, stamp, rotation_id=rotation_id)


class WorkQueue:
    """Sends work items to the configured queue; the client is built on first use.

    Thread-safe: the sweeper sends from a few threads at once. azure-storage-queue's
    ``QueueClient`` may be shared by threads (its pipeline and connection pool are), so one
    client is built, under a lock, and used by all."""

    def __init__(self, settings: QueueSettings, *, timeout_seconds: float) -> None:
        self.settings = settings
        self._timeout = timeout_seconds
        self._client: Any = None
        self._client_lock = threading.Lock()

    def send(self, item: WorkItem) -> None:
        """Enqueue one item; TransientError when the queue cannot take it now."""
        from azure.core.exceptions import AzureError, ResourceNotFoundError

        client = self._queue()
        try:
            try:
                client.send_message(item.encode(), timeout=self._timeout)
            except ResourceNotFoundError:  # a fresh account (Azurite): make it, once
                client.create_queue()
                client.send_message(item.encode(), timeout=self._timeout)
        except AzureError as exc:
            raise TransientError(f"the work queue {self.settings.name!r} did not take a message: "
                                 f"{type(exc).__name__}") from None

    def _queue(self) -> Any:
        with self._client_lock:
            if self._client is None:
                self._client = self._new_client()
            return self._client

    def _new_client(self) -> Any:
        from azure.storage.queue import (
            BinaryBase64DecodePolicy,
            QueueClient,
            TextBase64EncodePolicy,
        )

        # The host's queue trigger reads base64 by default; so the messages are written so.
        codec: dict[str, Any] = {"message_encode_policy": TextBase64EncodePolicy(),
                                 "message_decode_policy": BinaryBase64DecodePolicy(),
                                 "retry_total": 0}
        if self.settings.connection:
            return QueueClient.from_connection_string(self.settings.connection, self.settings.name,
                                                      **codec)
        from rotation.identity import storage_credential

        return QueueClient(
            self.settings.endpoint or "", self.settings.name,
            credential=storage_credential(self.settings.client_id, self.settings.resource_id),
            **codec)
