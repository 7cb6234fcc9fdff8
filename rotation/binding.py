"""How a Key Vault secret opts in to rotation: its tags, read into a typed binding.

Key Vault keeps tags per version, and a new version gets exactly the tags its request
carries, so every version akv-rotator writes carries the binding tags forward and adds its
own bookkeeping tags. Key Vault allows at most 15 tags of 256 characters each.

Tags an operator sets (README "Binding a secret" documents them):

=========================  ========================================================
``rotator-target``         target kind, e.g. ``postgresql``; its presence opts in
``rotator-address``        where the target lives, without credentials
``rotator-username``       login to rotate (optional: else the value's ``username``)
``rotator-admin-secret``   Key Vault secret holding an admin login (optional: without
                           it the login changes its own password)
``rotator-validity-days``  lifetime of each new version (optional: app default)
``rotator-strategy``       how the target rotates (optional: the kind's default)
``rotator-grace-hours``    how long a previous credential keeps working after a
                           new version is promoted, for strategies that retire it
                           (optional: app default)
=========================  ========================================================

Tags akv-rotator writes on every version it creates: ``rotator-rotation-id``,
``rotator-rotated-at`` and ``rotator-written-by`` (how it recognises its own writes).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from rotation.errors import SecretNotRotatable
from rotation.ids import RotationId
from rotation.secret_value import Credential, SecretValue
from rotation.targets.registry import TARGET_KINDS

TAG_TARGET = "rotator-target"
TAG_ADDRESS = "rotator-address"
TAG_USERNAME = "rotator-username"
TAG_ADMIN_SECRET = "rotator-admin-secret"  # noqa: S105 - a tag name
TAG_VALIDITY_DAYS = "rotator-validity-days"
TAG_STRATEGY = "rotator-strategy"
TAG_GRACE_HOURS = "rotator-grace-hours"
TAG_ROTATION_ID = "rotator-rotation-id"
TAG_ROTATED_AT = "rotator-rotated-at"
TAG_WRITTEN_BY = "rotator-written-by"
WRITTEN_BY = "akv-rotator"

MAX_TAGS = 15
MAX_TAG_LENGTH = 256
MIN_VALIDITY_DAYS = 1
MAX_VALIDITY_DAYS = 3650
MAX_GRACE_HOURS = 24 * 30
JSON_CONTENT_TYPE = "application/json"
SECRET_NAME = re.compile(r"^[0-9A-Za-z-]{1,127}$")  # Key Vault's rule for object names


@dataclass(frozen=True, slots=True)
class SecretBinding:
    """What a secret's tags say about the credential behind it."""

    target_kind: str
    address: str
    username: str | None
    admin_secret: str | None
    validity_days: int
    strategy: str
    grace_hours: float


def is_opted_in(tags: Mapping[str, str] | None) -> bool:
    """A secret takes part in rotation exactly when it carries ``rotator-target``."""
    return bool(tags and tags.get(TAG_TARGET, "").strip())


def is_own_write(tags: Mapping[str, str] | None) -> bool:
    """True for a version akv-rotator wrote itself (it never rotates in reply to those)."""
    return bool(tags and tags.get(TAG_WRITTEN_BY) == WRITTEN_BY and tags.get(TAG_ROTATION_ID))


def read_binding(
    tags: Mapping[str, str] | None, *, default_validity_days: int, default_grace_hours: float = 24.0
) -> SecretBinding:
    """Read and check every binding tag, reporting all problems in one error."""
    tags = dict(tags or {})
    problems: list[str] = []
    kind = tags.get(TAG_TARGET, "").strip().lower()
    spec = TARGET_KINDS.get(kind)
    if not kind:
        problems.append(f"tag {TAG_TARGET} is missing: the secret is not opted in to rotation")
    elif spec is None:
        known = ", ".join(sorted(TARGET_KINDS))
        problems.append(f"tag {TAG_TARGET}={kind!r} is not a known target kind ({known})")
    address = tags.get(TAG_ADDRESS, "").strip()
    if not address:
        problems.append(f"tag {TAG_ADDRESS} is missing")
    admin_secret = tags.get(TAG_ADMIN_SECRET, "").strip() or None
    if admin_secret is not None and not SECRET_NAME.match(admin_secret):
        problems.append(f"tag {TAG_ADMIN_SECRET}={admin_secret!r} is not a Key Vault secret name")
    validity = _validity_days(tags.get(TAG_VALIDITY_DAYS), default_validity_days, problems)
    strategy = tags.get(TAG_STRATEGY, "").strip().lower()
    if spec is not None:
        strategy = strategy or spec.default_strategy
        if strategy not in spec.strategies:
            allowed = ", ".join(spec.strategies)
            problems.append(f"tag {TAG_STRATEGY}={strategy!r} is not supported for {kind} ({allowed})")
        elif strategy in spec.needs_admin and admin_secret is None:
            problems.append(f"strategy {strategy} needs tag {TAG_ADMIN_SECRET} (an admin login)")
        if strategy == "alternating-users" and tags.get(TAG_USERNAME, "").strip():
            problems.append(f"strategy alternating-users switches logins, so it takes the login "
                            f"from the value; remove tag {TAG_USERNAME}")
    grace = _grace_hours(tags.get(TAG_GRACE_HOURS), default_grace_hours, problems)
    if problems:
        raise SecretNotRotatable("secret cannot be rotated: " + "; ".join(problems))
    return SecretBinding(
        target_kind=kind,
        address=address,
        username=tags.get(TAG_USERNAME, "").strip() or None,
        admin_secret=admin_secret,
        validity_days=validity,
        strategy=strategy,
        grace_hours=grace,
    )


def _validity_days(raw: str | None, default: int, problems: list[str]) -> int:
    if raw is None or not raw.strip():
        return default
    try:
        days = int(raw.strip())
    except ValueError:
        problems.append(f"tag {TAG_VALIDITY_DAYS}={raw!r} is not a whole number of days")
        return default
    if not MIN_VALIDITY_DAYS <= days <= MAX_VALIDITY_DAYS:
        problems.append(
            f"tag {TAG_VALIDITY_DAYS}={days} is outside {MIN_VALIDITY_DAYS}..{MAX_VALIDITY_DAYS}"
        )
    return days


def _grace_hours(raw: str | None, default: float, problems: list[str]) -> float:
    if raw is None or not raw.strip():
        return default
    try:
        hours = float(raw.strip())
    except ValueError:
        problems.append(f"tag {TAG_GRACE_HOURS}={raw!r} is not a number of hours")
        return default
    if not 0 <= hours <= MAX_GRACE_HOURS:
        problems.append(f"tag {TAG_GRACE_HOURS}={raw.strip()} is outside 0..{MAX_GRACE_HOURS}")
    return hours


def tags_for_new_version(
    previous: Mapping[str, str], *, rotation_id: RotationId, rotated_at: datetime
) -> dict[str, str]:
    """Carry every tag of the previous version forward and stamp akv-rotator's bookkeeping.

    Raises :class:`SecretNotRotatable` if the result would break Key Vault's tag limits, so
    the problem is found before the target is touched, not when promoting.
    """
    tags = dict(previous)
    tags[TAG_ROTATION_ID] = rotation_id
    tags[TAG_ROTATED_AT] = rotated_at.isoformat(timespec="seconds")
    tags[TAG_WRITTEN_BY] = WRITTEN_BY
    if len(tags) > MAX_TAGS:
        raise SecretNotRotatable(
            f"the new version would need {len(tags)} tags, Key Vault allows {MAX_TAGS}: "
            "remove tags akv-rotator does not need"
        )
    too_long = sorted(k for k, v in tags.items() if len(k) > MAX_TAG_LENGTH or len(v) > MAX_TAG_LENGTH)
    if too_long:
        raise SecretNotRotatable(f"tags longer than {MAX_TAG_LENGTH} characters: {', '.join(too_long)}")
    return tags


def read_credential(
    value: SecretValue, content_type: str | None, binding_username: str | None
) -> Credential:
    """Decode the stored ``{"username": ..., "password": ...}`` JSON into a credential.

    The error messages name what is wrong with the value's shape, never its content.
    """
    if content_type is not None and content_type.split(";")[0].strip().lower() != JSON_CONTENT_TYPE:
        raise SecretNotRotatable(
            f"content type is {content_type!r}; rotatable database secrets are stored as "
            f"{JSON_CONTENT_TYPE} with username and password"
        )
    try:
        document = json.loads(value.reveal())
    except ValueError:
        raise SecretNotRotatable("the secret value is not JSON") from None
    if not isinstance(document, dict):
        raise SecretNotRotatable("the secret value must be a JSON object with username and password")
    password = document.get("password")
    stored_username = document.get("username")
    if not isinstance(password, str) or not password:
        raise SecretNotRotatable("the secret value has no string 'password'")
    if stored_username is not None and not isinstance(stored_username, str):
        raise SecretNotRotatable("the secret value's 'username' is not a string")
    if binding_username and stored_username and binding_username != stored_username:
        raise SecretNotRotatable(
            f"tag {TAG_USERNAME}={binding_username!r} disagrees with the value's username "
            f"{stored_username!r}"
        )
    username = binding_username or stored_username
    if not username:
        raise SecretNotRotatable(f"no username: set tag {TAG_USERNAME} or 'username' in the value")
    return Credential(username=username, password=SecretValue(password))


def encode_credential(credential: Credential) -> SecretValue:
    """The JSON that goes into Key Vault, so ESO can select ``username``/``password``."""
    return SecretValue(
        json.dumps({"username": credential.username, "password": credential.password.reveal()})
    )
