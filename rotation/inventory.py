"""The state of every opted-in secret at a glance (``akv-rotator status``, ``GET /api/secrets``).

Read-only: one listing of each vault's secret properties (never a value) and, per opted-in
secret, one journal query for its newest rotations. A vault of thousands of secrets is
thousands of journal queries, so callers may pass ``progress`` to show how far it got.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from rotation.binding import TAG_STRATEGY, TAG_TARGET, is_opted_in
from rotation.journal.base import Journal
from rotation.journal.model import RotationRecord
from rotation.keyvault import KeyVaultSecrets, SecretSummary
from rotation.pending import is_pending_companion
from rotation.settings import Settings

#: Told how far the work got: (secrets listed so far, None) while the vaults are paged
#: through, then (opted-in secrets looked up in the journal, how many there are).
Progress = Callable[[int, int | None], None]
_HISTORY = 5  # newest rotations read per secret: enough to find the last finished one


@dataclass(frozen=True, slots=True)
class SecretStatus:
    """One opted-in secret: its binding, its current version, its last and open rotations."""

    vault: str
    secret: str
    target: str
    kind: str | None          # None when no declared target has that id
    strategy: str | None
    enabled: bool
    created_on: datetime | None
    expires_on: datetime | None
    last: RotationRecord | None      # the newest finished rotation
    open: RotationRecord | None      # an unfinished one (in progress, awaiting, parked)

    def age_days(self, now: datetime) -> float | None:
        return None if self.created_on is None else (now - self.created_on) / timedelta(days=1)

    def expires_in_days(self, now: datetime) -> float | None:
        return None if self.expires_on is None else (self.expires_on - now) / timedelta(days=1)

    @property
    def state(self) -> str:
        """One word for the table: the open rotation's status, else the last outcome."""
        if not self.enabled:
            return "disabled"
        if self.open is not None:
            return self.open.status
        return self.last.status if self.last is not None else "never-rotated"

    def public(self, now: datetime) -> dict[str, object]:
        def iso(moment: datetime | None) -> str | None:
            return moment.isoformat(timespec="seconds") if moment else None

        def days(value: float | None) -> float | None:
            return None if value is None else round(value, 1)

        return {
            "vault": self.vault, "secret": self.secret, "target": self.target, "kind": self.kind,
            "strategy": self.strategy, "enabled": self.enabled,
            "versionCreated": iso(self.created_on),
            "versionAgeDays": days(self.age_days(now)), "expiresOn": iso(self.expires_on),
            "expiresInDays": days(self.expires_in_days(now)), "state": self.state,
            "lastRotation": None if self.last is None else {
                "rotationId": self.last.rotation_id, "status": self.last.status,
                "finishedAt": iso(self.last.finished_at), "error": self.last.last_error},
            "openRotation": None if self.open is None else {
                "rotationId": self.open.rotation_id, "status": self.open.status,
                "step": self.open.step, "retireAfter": iso(self.open.retire_after),
                "nextAttemptAt": iso(self.open.next_attempt_at)},
        }


def inventory(settings: Settings, vaults: Callable[[str], KeyVaultSecrets], journal: Journal,
              names: Sequence[str], *, progress: Progress | None = None) -> list[SecretStatus]:
    """Every opted-in secret of the vaults ``names``, sorted by vault and name."""
    found: list[tuple[str, SecretSummary]] = []
    listed = 0
    for vault in names:
        def seen(count: int, before: int = listed) -> None:
            if progress is not None:
                progress(before + count, None)

        summaries = vaults(vault).list_secrets(seen)
        listed += len(summaries)
        found.extend((vault, s) for s in summaries
                     if is_opted_in(s.tags) and not is_pending_companion(s.name))
    rows: list[SecretStatus] = []
    for done, (vault, summary) in enumerate(sorted(found, key=lambda f: (f[0], f[1].name.lower())), 1):
        rows.append(_status(settings, journal, vault, summary))
        if progress is not None:
            progress(done, len(found))
    return rows


def _status(settings: Settings, journal: Journal, vault: str, summary: SecretSummary) -> SecretStatus:
    target_id = summary.tags.get(TAG_TARGET, "").strip().lower()
    definition = settings.targets.targets.get(target_id)
    strategy = summary.tags.get(TAG_STRATEGY) or (definition.default_strategy if definition else None)
    records = journal.for_secret(vault, summary.name, limit=_HISTORY)
    return SecretStatus(
        vault=vault, secret=summary.name, target=target_id,
        kind=definition.kind if definition else None, strategy=strategy,
        enabled=summary.enabled, created_on=summary.created_on, expires_on=summary.expires_on,
        last=next((r for r in records if r.finished), None),
        open=next((r for r in records if not r.finished), None))
