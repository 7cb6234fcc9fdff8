"""Opting a secret in: the binding tags, checked against the target before they are written.

``akv-rotator onboard`` composes the tags (:func:`onboarding_tags`), has the plan check them
with the current value against the target (:class:`~rotation.preflight.Preflight`, given the
tags instead of the stored ones), and only when nothing fails writes them as a new version
with the same value and an expiry. A hand-written version is what Key Vault sees: the rotator
treats it as one (it carries no bookkeeping tags of the rotator's, which are dropped here).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from rotation.binding import (
    RETIRED_TAGS,
    TAG_GRACE_HOURS,
    TAG_MAX_GRACE_HOURS,
    TAG_ROTATED_AT,
    TAG_ROTATION_ID,
    TAG_STRATEGY,
    TAG_TARGET,
    TAG_USERNAME,
    TAG_VALIDITY_DAYS,
    TAG_WRITTEN_BY,
    read_binding,
    tags_for_new_version,
)
from rotation.dr import DR_TAG
from rotation.errors import InvalidRequest, SecretNotRotatable
from rotation.ids import RotationId
from rotation.keyvault import KeyVaultSecrets, SecretVersion
from rotation.preflight import Plan, Preflight
from rotation.settings import Settings

_BOOKKEEPING = (TAG_ROTATION_ID, TAG_ROTATED_AT, TAG_WRITTEN_BY)


@dataclass(frozen=True, slots=True)
class OptIn:
    """What an operator asks for; None leaves the tag as it is (or absent)."""

    target: str
    username: str | None = None
    strategy: str | None = None
    validity_days: int | None = None
    grace_hours: float | None = None
    max_grace_hours: float | None = None
    dr: bool = False
    expires_in_days: float | None = None


@dataclass(frozen=True, slots=True)
class Onboarding:
    """The tags, the plan made with them, and the version written (None: nothing written)."""

    tags: dict[str, str]
    expires_on: datetime
    plan: Plan
    written: SecretVersion | None = None


def onboarding_tags(existing: Mapping[str, str], wanted: OptIn) -> dict[str, str]:
    """The current tags with the binding set as asked, the rotator's bookkeeping and the
    retired tags dropped; refused when the first rotation could not carry them forward."""
    tags = {k: v for k, v in existing.items() if k not in _BOOKKEEPING and k not in RETIRED_TAGS}
    tags[TAG_TARGET] = wanted.target
    for tag, value in ((TAG_USERNAME, wanted.username), (TAG_STRATEGY, wanted.strategy),
                       (TAG_VALIDITY_DAYS, wanted.validity_days), (TAG_GRACE_HOURS, wanted.grace_hours),
                       (TAG_MAX_GRACE_HOURS, wanted.max_grace_hours)):
        if value is not None:
            tags[tag] = f"{value:g}" if isinstance(value, float) else str(value)
    if wanted.dr:
        tags[DR_TAG] = "true"
    try:  # the first rotation adds its bookkeeping tags: they must fit too
        tags_for_new_version(tags, rotation_id=RotationId("0" * 32), rotated_at=datetime.now())
    except SecretNotRotatable as exc:
        raise InvalidRequest(str(exc)) from None
    return tags


def onboard(kv: KeyVaultSecrets, preflight: Preflight, settings: Settings, secret: str,
            wanted: OptIn, *, now: datetime, write: bool) -> Onboarding:
    """Plan the opt-in of ``secret``; write the new version when ``write`` and no check failed."""
    current = kv.latest(secret)
    tags = onboarding_tags(current.tags, wanted)
    plan = preflight.plan(kv.vault, current.name, tags=tags)
    expires_on = _expiry(current, tags, wanted, settings, now)
    if not write or plan.verdict == "failed":
        return Onboarding(tags, expires_on, plan)
    written = kv.set_version(current.name, current.value, content_type=current.content_type,
                             tags=tags, expires_on=expires_on)
    return Onboarding(tags, expires_on, plan, written)


def _expiry(current: SecretVersion, tags: Mapping[str, str], wanted: OptIn, settings: Settings,
            now: datetime) -> datetime:
    """Asked for; else the current version's, while in the future; else a full lifetime."""
    if wanted.expires_in_days is not None:
        return now + timedelta(days=wanted.expires_in_days)
    if current.expires_on is not None and current.expires_on > now:
        return current.expires_on
    try:
        days = read_binding(tags, default_validity_days=settings.validity_days).validity_days
    except SecretNotRotatable:
        days = settings.validity_days
    return now + timedelta(days=days)
