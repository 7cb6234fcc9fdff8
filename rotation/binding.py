"""How a Key Vault secret opts in to rotation: its tags, read into a typed binding.

Tags can be written by anyone with write access to one secret, so they only *select*: a tag
names one of the targets the operator declared (:mod:`rotation.catalogue`), and may tune what
is harmless to tune (lifetime, strategy among those the target allows, grace). Where a
credential is sent and which admin login is used are the operator's, never a tag's (ADR 0005).

Key Vault keeps tags per version, and a new version gets exactly the tags its request
carries, so every version akv-rotator writes carries the binding tags forward and adds its
own bookkeeping tags. Key Vault allows at most 15 tags of 256 characters each.

Tags an operator sets (README "Binding a secret" documents them):

=========================  ========================================================
``rotator-target``         id of an operator-defined target; its presence opts in
``rotator-username``       login to rotate (optional: else the value's ``username``);
                           must be one the target admits
``rotator-validity-days``  lifetime of each new version (optional: app default)
``rotator-strategy``       how the target rotates (optional: the target's default)
``rotator-grace-hours``    how long a previous credential keeps working after a
                           new version is promoted, for strategies that retire it
                           (optional: app default)
``rotator-max-grace-hours`` where propagation tracks Kubernetes consumers: the
                           longest the previous credential waits for them to confirm
                           before it is retired anyway (optional: the grace hours)
``rotator-password-``      a password preset of :mod:`rotation.passwords`
``alphabet``               (optional: the target's preset)
``rotator-password-``      length of generated passwords, 16-128
``length``                 (optional: the target's length)
``rotator-dr``             ``true``: the secret belongs in the break-glass DR file
                           (:mod:`rotation.dr`); rotating it logs ``DR file stale``
=========================  ========================================================

Tags akv-rotator writes on every version it creates: ``rotator-rotation-id``,
``rotator-rotated-at`` and ``rotator-written-by`` (how it recognises its own writes).
``rotator-address`` and ``rotator-admin-secret`` chose the destination and the admin login
before ADR 0005; a secret still carrying them is refused with a message saying so, rather
than silently rotated somewhere its owner did not expect.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from rotation.errors import SecretNotRotatable
from rotation.ids import RotationId
from rotation.passwords import MAX_LENGTH, MIN_LENGTH, PRESETS
from rotation.secret_value import Credential, SecretValue

TAG_TARGET = "rotator-target"
TAG_USERNAME = "rotator-username"
TAG_VALIDITY_DAYS = "rotator-validity-days"
TAG_STRATEGY = "rotator-strategy"
TAG_GRACE_HOURS = "rotator-grace-hours"
TAG_MAX_GRACE_HOURS = "rotator-max-grace-hours"
TAG_PASSWORD_ALPHABET = "rotator-password-alphabet"  # noqa: S105 (a tag name)
TAG_PASSWORD_LENGTH = "rotator-password-length"  # noqa: S105 (a tag name)
TAG_ROTATION_ID = "rotator-rotation-id"
TAG_ROTATED_AT = "rotator-rotated-at"
TAG_WRITTEN_BY = "rotator-written-by"
RETIRED_TAGS = {
    "rotator-address": "the address comes from the operator's target",
    "rotator-admin-secret": "the admin login comes from the operator's target",
}
WRITTEN_BY = "akv-rotator"

MAX_TAGS = 15
MAX_TAG_LENGTH = 256
MIN_VALIDITY_DAYS = 1
MAX_VALIDITY_DAYS = 3650
MAX_GRACE_HOURS = 24 * 30
MAX_USERNAME = 128
JSON_CONTENT_TYPE = "application/json"
SECRET_NAME = re.compile(r"^[0-9A-Za-z-]{1,127}$")  # Key Vault's rule for object names
TARGET_ID = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


@dataclass(frozen=True, slots=True)
class SecretBinding:
    """What a secret's tags say: which operator target, and the harmless knobs."""

    target_id: str
    username: str | None
    validity_days: int
    strategy: str | None  # None: the target's default
    grace_hours: float
    password_preset: str | None = None  # None: the target's
    password_length: int | None = None  # None: the target's
    #: With Kubernetes consumers tracked, the previous credential is retired as soon as every
    #: consumer confirmed the new one, and at the latest this long after promote.
    max_grace_hours: float | None = None  # None: grace_hours

    @property
    def propagation_wait_hours(self) -> float:
        return self.grace_hours if self.max_grace_hours is None else self.max_grace_hours


def is_opted_in(tags: Mapping[str, str] | None) -> bool:
    """A secret takes part in rotation exactly when it carries ``rotator-target``."""
    return bool(tags and str(tags.get(TAG_TARGET, "")).strip())


def is_own_write(tags: Mapping[str, str] | None) -> bool:
    """True for a version akv-rotator wrote itself (it never rotates in reply to those)."""
    return bool(tags and tags.get(TAG_WRITTEN_BY) == WRITTEN_BY and tags.get(TAG_ROTATION_ID))


def read_binding(
    tags: Mapping[str, str] | None, *, default_validity_days: int, default_grace_hours: float = 24.0
) -> SecretBinding:
    """Read and check every binding tag, reporting all problems in one error."""
    tags = {str(k): str(v) for k, v in (tags or {}).items()}
    problems: list[str] = []
    target_id = tags.get(TAG_TARGET, "").strip().lower()
    if not target_id:
        problems.append(f"tag {TAG_TARGET} is missing: the secret is not opted in to rotation")
    elif not TARGET_ID.match(target_id):
        problems.append(f"tag {TAG_TARGET}={quote_input(target_id)} is not a target id "
                        "(lower-case letters, digits and '-')")
    for tag, why in RETIRED_TAGS.items():
        if tag in tags:
            problems.append(f"tag {tag} is no longer read ({why}); remove it")
    username = tags.get(TAG_USERNAME, "").strip() or None
    if username is not None and not _plain_name(username):
        problems.append(f"tag {TAG_USERNAME} must be 1-{MAX_USERNAME} printable characters")
    validity = _validity_days(tags.get(TAG_VALIDITY_DAYS), default_validity_days, problems)
    strategy = tags.get(TAG_STRATEGY, "").strip().lower() or None
    if strategy == "alternating-users" and username:
        problems.append(f"strategy alternating-users switches logins, so it takes the login "
                        f"from the value; remove tag {TAG_USERNAME}")
    grace = _grace_hours(tags.get(TAG_GRACE_HOURS), default_grace_hours, problems)
    max_grace = (_grace_hours(tags[TAG_MAX_GRACE_HOURS], grace, problems, TAG_MAX_GRACE_HOURS)
                 if tags.get(TAG_MAX_GRACE_HOURS, "").strip() else None)
    preset = _password_preset(tags.get(TAG_PASSWORD_ALPHABET), problems)
    length = _password_length(tags.get(TAG_PASSWORD_LENGTH), problems)
    if problems:
        raise SecretNotRotatable("secret cannot be rotated: " + "; ".join(problems))
    return SecretBinding(
        target_id=target_id,
        username=username,
        validity_days=validity,
        strategy=strategy,
        grace_hours=grace,
        password_preset=preset,
        password_length=length,
        max_grace_hours=max_grace,
    )


def quote_input(text: str, limit: int = 64) -> str:
    """A tag value quoted for a message, cut short: tags are anyone's input.

    The cut is made on the quoted form, not on the characters: ``repr`` writes an
    unprintable character as an escape of up to 10 characters (``\\U000e0001``), so cutting
    the characters alone let one 256-character tag value fill 2,500 characters of a message.
    """
    quoted = repr(text)
    return quoted if len(quoted) <= limit + 2 else quoted[:limit] + "…"


def _plain_name(name: str) -> bool:
    return 0 < len(name) <= MAX_USERNAME and name.isprintable() and _encodable(name)


def _encodable(text: str) -> bool:
    """False for strings no driver can send (lone surrogates from JSON escapes)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in text


def _validity_days(raw: str | None, default: int, problems: list[str]) -> int:
    if raw is None or not raw.strip():
        return default
    try:
        days = int(raw.strip())
    except ValueError:
        problems.append(f"tag {TAG_VALIDITY_DAYS}={quote_input(raw)} is not a whole number of days")
        return default
    if not MIN_VALIDITY_DAYS <= days <= MAX_VALIDITY_DAYS:
        problems.append(
            f"tag {TAG_VALIDITY_DAYS}={days} is outside {MIN_VALIDITY_DAYS}..{MAX_VALIDITY_DAYS}"
        )
    return days


def _grace_hours(raw: str | None, default: float, problems: list[str],
                 tag: str = TAG_GRACE_HOURS) -> float:
    if raw is None or not raw.strip():
        return default
    try:
        hours = float(raw.strip())
    except ValueError:
        problems.append(f"tag {tag}={quote_input(raw)} is not a number of hours")
        return default
    if not 0 <= hours <= MAX_GRACE_HOURS:  # also refuses nan and inf
        problems.append(f"tag {tag}={quote_input(raw.strip())} is outside 0..{MAX_GRACE_HOURS}")
        return default
    return hours


def _password_preset(raw: str | None, problems: list[str]) -> str | None:
    preset = (raw or "").strip().lower()
    if not preset:
        return None
    if preset not in PRESETS:
        problems.append(f"tag {TAG_PASSWORD_ALPHABET}={quote_input(preset)} names no password "
                        f"preset; presets: {', '.join(PRESETS)}")
    return preset


def _password_length(raw: str | None, problems: list[str]) -> int | None:
    if raw is None or not raw.strip():
        return None
    text = raw.strip()
    if not (text.isascii() and text.isdigit()) or not MIN_LENGTH <= int(text) <= MAX_LENGTH:
        problems.append(f"tag {TAG_PASSWORD_LENGTH}={quote_input(text)} is not a whole number "
                        f"of characters in {MIN_LENGTH}..{MAX_LENGTH}")
        return None
    return int(text)


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


#: The field holding the secret, by value shape: a database password, or an API token.
SECRET_FIELDS = ("password", "token")
#: Fields naming *which* credential a token is on its server, so it can be revoked later:
#: Jenkins has no API that lists tokens (the uuid is only ever in the create answer), and
#: NetBox deletes tokens by id. Kept in the value, not a tag, so it travels atomically with
#: the token it names: tags are edited apart from the value, and a tag pointing at another
#: token would have retirement revoke the wrong one.
REF_FIELDS = ("tokenUuid", "tokenId")
MAX_REF = 64


def read_credential(
    value: SecretValue, content_type: str | None, binding_username: str | None
) -> Credential:
    """Decode the stored JSON into a credential: ``{"username", "password"}`` for a database,
    ``{"username", "token", "tokenUuid" | "tokenId"}`` for an API token.

    The error messages name what is wrong with the value's shape, never its content.
    """
    if content_type is not None and content_type.split(";")[0].strip().lower() != JSON_CONTENT_TYPE:
        raise SecretNotRotatable(  # anyone who may write the secret sets its content type
            f"content type is {quote_input(content_type)}; rotatable secrets are stored as "
            f"{JSON_CONTENT_TYPE} with username and password (or token)"
        )
    try:
        document = json.loads(value.reveal())
    except (ValueError, RecursionError):
        raise SecretNotRotatable("the secret value is not JSON") from None
    if not isinstance(document, dict):
        raise SecretNotRotatable("the secret value must be a JSON object with username and password")
    secret_field = _secret_field(document)
    secret = document[secret_field]
    stored_username = document.get("username")
    if not isinstance(secret, str) or not secret:
        raise SecretNotRotatable(f"the secret value has no string {secret_field!r}")
    if not _encodable(secret):
        raise SecretNotRotatable(f"the secret value's {secret_field!r} is not valid UTF-8 text "
                                 "(a lone surrogate or a NUL character)")
    if stored_username is not None and not isinstance(stored_username, str):
        raise SecretNotRotatable("the secret value's 'username' is not a string")
    if stored_username is not None and not _plain_name(stored_username):
        raise SecretNotRotatable(f"the secret value's 'username' must be 1-{MAX_USERNAME} "
                                 "printable characters")
    if binding_username and stored_username and binding_username != stored_username:
        raise SecretNotRotatable(
            f"tag {TAG_USERNAME}={quote_input(binding_username)} disagrees with the value's "
            f"username {quote_input(stored_username)}"
        )
    username = binding_username or stored_username
    if not username:
        raise SecretNotRotatable(f"no username: set tag {TAG_USERNAME} or 'username' in the value")
    ref_field, ref = _reference(document, secret_field)
    return Credential(username=username, password=SecretValue(secret),
                      secret_field=secret_field, ref_field=ref_field, ref=ref)


def _secret_field(document: dict[str, object]) -> str:
    present = [name for name in SECRET_FIELDS if name in document]
    if len(present) != 1:
        raise SecretNotRotatable("the secret value must hold exactly one of 'password' (a "
                                 "database login) or 'token' (an API token)")
    return present[0]


def _reference(document: dict[str, object], secret_field: str) -> tuple[str | None, str | None]:
    present = [name for name in REF_FIELDS if document.get(name) is not None]
    if not present:
        return None, None
    if secret_field != SECRET_FIELDS[1] or len(present) > 1:
        raise SecretNotRotatable(f"the secret value may name its token by one of "
                                 f"{', '.join(REF_FIELDS)}, and only beside 'token'")
    name, raw = present[0], document[present[0]]
    if name == "tokenId" and isinstance(raw, int) and not isinstance(raw, bool) and raw > 0:
        return name, str(raw)
    if name == "tokenUuid" and isinstance(raw, str) and 0 < len(raw) <= MAX_REF and raw.isascii() \
            and raw.replace("-", "").isalnum():
        return name, raw
    kind = "a positive whole number" if name == "tokenId" else f"a uuid of 1-{MAX_REF} characters"
    raise SecretNotRotatable(f"the secret value's {name!r} must be {kind}")


def encode_credential(credential: Credential) -> SecretValue:
    """The JSON that goes into Key Vault, so ESO can select ``username`` and ``password`` (or
    ``token``); a token's reference goes beside it."""
    document: dict[str, object] = {"username": credential.username,
                                   credential.secret_field: credential.password.reveal()}
    if credential.ref_field is not None and credential.ref is not None:
        document[credential.ref_field] = (int(credential.ref) if credential.ref_field == "tokenId"
                                          else credential.ref)
    return SecretValue(json.dumps(document))
