"""The rotation service: decides what an event or request asks for, and rotates.

A rotation of the single-user strategy runs these steps, each a span and a log line::

    read ─► apply ─► verify ─► promote
    (current    (target gets   (fresh login   (new Key Vault version with
     version,    the new        with the new   carried-forward tags and
     binding)    password)      password)      a fresh expiry)

``apply`` is skipped when the new password already works, so a retry is harmless. The
durable journal, lease and retirement of a later issue slot in around these steps; Kubernetes
propagation goes between ``promote`` and the end.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from rotation import telemetry
from rotation.binding import (
    JSON_CONTENT_TYPE,
    encode_credential,
    is_opted_in,
    is_own_write,
    read_binding,
    read_credential,
    tags_for_new_version,
)
from rotation.errors import ConcurrentRotation, SecretNotFound, SecretNotRotatable
from rotation.events import KeyVaultEvent
from rotation.ids import RotationId, SecretName, VaultName, VersionId
from rotation.keyvault import KeyVaultSecrets, SecretVersion
from rotation.passwords import generate_password
from rotation.retry import call_with_retry
from rotation.secret_value import Credential
from rotation.settings import Settings
from rotation.targets.base import Target, TargetContext
from rotation.targets.registry import build_target

logger = logging.getLogger(__name__)

TriggerSource = Literal["event", "http", "sweeper", "cli"]
Decision = Literal["rotated", "ignored", "refused"]
Clock = Callable[[], datetime]
VaultDirectory = Callable[[VaultName], KeyVaultSecrets]
TargetFactory = Callable[[TargetContext], Target]


@dataclass(frozen=True, slots=True)
class RotationTrigger:
    """What asked for a rotation: an event (its id and type), an HTTP caller, the sweeper."""

    source: TriggerSource
    reference: str
    event_type: str | None = None


@dataclass(frozen=True, slots=True)
class RotationResult:
    """The outcome of one rotation: ids, versions and timing, never a value."""

    rotation_id: RotationId
    vault: VaultName
    secret: SecretName
    target_kind: str
    old_version: VersionId
    new_version: VersionId
    new_expiry: datetime
    started_at: datetime
    duration_seconds: float
    trigger: RotationTrigger

    def to_dict(self) -> dict[str, Any]:
        return {
            "rotationId": self.rotation_id,
            "vault": self.vault,
            "secret": self.secret,
            "targetKind": self.target_kind,
            "oldVersion": self.old_version,
            "newVersion": self.new_version,
            "newExpiry": self.new_expiry.isoformat(timespec="seconds"),
            "startedAt": self.started_at.isoformat(timespec="seconds"),
            "durationSeconds": round(self.duration_seconds, 3),
            "trigger": {"source": self.trigger.source, "reference": self.trigger.reference},
        }


@dataclass(frozen=True, slots=True)
class EventOutcome:
    """What an event led to, and why; ``result`` is set when it rotated."""

    decision: Decision
    reason: str
    result: RotationResult | None = None


class RotationService:
    """Turns events and requests into rotations of opted-in secrets."""

    def __init__(
        self,
        *,
        settings: Settings,
        vaults: VaultDirectory,
        clock: Clock,
        targets: TargetFactory = build_target,
        new_rotation_id: Callable[[], str] = lambda: uuid.uuid4().hex,
    ) -> None:
        self._settings = settings
        self._vaults = vaults
        self._clock = clock
        self._targets = targets
        self._new_rotation_id = new_rotation_id
        self._running: dict[tuple[str, str], RotationId] = {}
        self._running_lock = threading.Lock()

    def handle_event(self, event: KeyVaultEvent) -> EventOutcome:
        """Decide what a Key Vault event asks for, and rotate when it asks for it."""
        if self._settings.vault(event.vault) is None:
            return EventOutcome("refused", f"vault {event.vault!r} is not in the allowlist")
        kv = self._vaults(event.vault)
        if not event.asks_for_rotation:
            return self._new_version_outcome(kv, event)
        try:
            current = kv.latest(event.secret)
        except SecretNotFound:
            return EventOutcome("ignored", "the secret no longer exists")
        except SecretNotRotatable as exc:
            return EventOutcome("ignored", str(exc))
        if current.version != event.version:
            return EventOutcome(
                "ignored",
                f"stale event: it names version {event.version}, the current one is "
                f"{current.version}",
            )
        if not current.enabled:
            return EventOutcome("ignored", "the current version is disabled")
        if not is_opted_in(current.tags):
            return EventOutcome("ignored", "the secret is not opted in to rotation")
        trigger = RotationTrigger("event", event.event_id, event_type=event.kind)
        result = self.rotate(event.vault, event.secret, trigger, expected_version=event.version)
        return EventOutcome("rotated", f"rotated after {event.kind}", result)

    def _new_version_outcome(self, kv: KeyVaultSecrets, event: KeyVaultEvent) -> EventOutcome:
        try:
            written = kv.version(event.secret, event.version)
        except (SecretNotFound, SecretNotRotatable):
            return EventOutcome("ignored", "the new version is gone or disabled")
        if is_own_write(written.tags):
            return EventOutcome("ignored", "akv-rotator wrote this version itself")
        return EventOutcome("ignored", "a new version written outside akv-rotator needs no rotation")

    def rotate(
        self,
        vault: VaultName,
        secret: SecretName,
        trigger: RotationTrigger,
        *,
        expected_version: VersionId | None = None,
    ) -> RotationResult:
        """Rotate the credential behind ``secret`` now, and store it as a new version."""
        rotation_id = RotationId(self._new_rotation_id())
        with self._exclusive(vault, secret, rotation_id), telemetry.rotation_context(
            rotation_id=rotation_id, vault=vault, secret=secret, trigger=trigger.source
        ), telemetry.step("rotate", trigger_reference=trigger.reference):
            return self._rotate(rotation_id, vault, secret, trigger, expected_version)

    def _rotate(
        self,
        rotation_id: RotationId,
        vault: VaultName,
        secret: SecretName,
        trigger: RotationTrigger,
        expected_version: VersionId | None,
    ) -> RotationResult:
        started_at, started = self._clock(), time.perf_counter()
        kv = self._vaults(vault)
        with telemetry.step("read"):
            current = kv.latest(secret)
            if expected_version is not None and current.version != expected_version:
                raise ConcurrentRotation(
                    f"secret {secret!r} moved to version {current.version} before rotation began"
                )
            binding = read_binding(current.tags, default_validity_days=self._settings.validity_days)
            credential = read_credential(current.value, current.content_type, binding.username)
            admin = self._admin_credential(kv, binding.admin_secret)
            new_tags = tags_for_new_version(current.tags, rotation_id=rotation_id,
                                            rotated_at=started_at)
        target = self._targets(
            TargetContext(binding, admin, self._settings.connect_timeout_seconds)
        )
        new_credential = Credential(credential.username, generate_password())
        with telemetry.step("apply", target=binding.target_kind):
            self._retrying(lambda: target.apply(credential, new_credential), "apply")
        with telemetry.step("verify", target=binding.target_kind):
            self._retrying(lambda: target.verify(new_credential), "verify")
        expires_on = self._clock() + timedelta(days=binding.validity_days)
        with telemetry.step("promote"):
            promoted = kv.set_version(
                secret, encode_credential(new_credential), content_type=JSON_CONTENT_TYPE,
                tags=new_tags, expires_on=expires_on,
            )
        return RotationResult(
            rotation_id=rotation_id,
            vault=vault,
            secret=secret,
            target_kind=binding.target_kind,
            old_version=current.version,
            new_version=promoted.version,
            new_expiry=promoted.expires_on or expires_on,
            started_at=started_at,
            duration_seconds=time.perf_counter() - started,
            trigger=trigger,
        )

    def _admin_credential(self, kv: KeyVaultSecrets, admin_secret: str | None) -> Credential | None:
        if admin_secret is None:
            return None
        try:
            stored: SecretVersion = kv.latest(admin_secret)
        except SecretNotFound as exc:
            raise SecretNotRotatable(f"admin secret {admin_secret!r} does not exist") from exc
        return read_credential(stored.value, stored.content_type, None)

    def _retrying(self, action: Callable[[], None], what: str) -> None:
        call_with_retry(action, policy=self._settings.retry, what=what)

    def _exclusive(
        self, vault: VaultName, secret: SecretName, rotation_id: RotationId
    ) -> _SecretClaim:
        return _SecretClaim(self, (vault, secret.lower()), rotation_id)


class _SecretClaim:
    """An in-process claim on one secret, so this worker never rotates it twice at once.

    It does not span processes or instances; the durable per-secret lease of the rotation
    protocol issue replaces it.
    """

    def __init__(self, owner: RotationService, key: tuple[str, str], rotation_id: RotationId):
        self._owner, self._key, self._rotation_id = owner, key, rotation_id

    def __enter__(self) -> None:
        with self._owner._running_lock:
            running = self._owner._running.get(self._key)
            if running is not None:
                raise ConcurrentRotation(
                    f"secret {self._key[1]!r} is already being rotated", rotation_id=running
                )
            self._owner._running[self._key] = self._rotation_id

    def __exit__(self, *exc_info: object) -> None:
        with self._owner._running_lock:
            self._owner._running.pop(self._key, None)
