"""The pending credential: the new credential, durable in Key Vault before the target changes.

Before ``apply`` touches the target, the new credential is written to a companion secret,
``<name>-rotator-pending``. From then on no credential exists only in a worker's memory: if
the worker dies, the journal names the pending version and the next worker reads it back and
carries on with the *same* credential, so every later step is a harmless repeat.

Why one long-lived companion secret rather than a fresh one per rotation that is deleted at
the end: Key Vault soft-deletes, and a soft-deleted name cannot be reused until it is purged
(a permission nobody has by default) or its 7-90 day retention passes. So the companion is
never deleted; each rotation adds a version to it, and *finish* disables that version, after
which Key Vault refuses to hand out its value.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from rotation.binding import (
    JSON_CONTENT_TYPE,
    TAG_ROTATION_ID,
    TAG_WRITTEN_BY,
    WRITTEN_BY,
    encode_credential,
    read_credential,
)
from rotation.errors import SecretNotFound, SecretNotRotatable
from rotation.ids import RotationId, SecretName, VersionId
from rotation.keyvault import KeyVaultSecrets
from rotation.secret_value import Credential

PENDING_SUFFIX = "-rotator-pending"
TAG_PENDING_FOR = "rotator-pending-for"
MAX_NAME = 127


def pending_name(secret: str) -> str:
    """The companion's name: readable when it fits in 127 characters, hashed when not."""
    readable = secret + PENDING_SUFFIX
    if len(readable) <= MAX_NAME:
        return readable
    digest = hashlib.sha256(secret.lower().encode()).hexdigest()[:40]
    return f"rotator-pending-{digest}"


def is_pending_companion(name: str) -> bool:
    """True for a companion secret's name, readable or hashed."""
    lowered = name.lower()
    return lowered.endswith(PENDING_SUFFIX) or lowered.startswith("rotator-pending-")


def store_pending(
    kv: KeyVaultSecrets, secret: SecretName, credential: Credential, *,
    rotation_id: RotationId, expires_on: datetime,
) -> VersionId:
    """Write the new credential as a new version of the companion; return that version."""
    written = kv.set_version(
        pending_name(secret),
        encode_credential(credential),
        content_type=JSON_CONTENT_TYPE,
        tags={TAG_PENDING_FOR: secret, TAG_ROTATION_ID: rotation_id, TAG_WRITTEN_BY: WRITTEN_BY},
        expires_on=expires_on,
        marker=TAG_ROTATION_ID,  # a retried write adopts the version a lost response hid
    )
    return written.version


def find_pending(
    kv: KeyVaultSecrets, secret: str, rotation_id: str
) -> tuple[VersionId, Credential] | None:
    """The pending credential an earlier attempt of this rotation stored, if it is the latest."""
    try:
        latest = kv.latest(pending_name(secret))
    except (SecretNotFound, SecretNotRotatable):
        return None  # no companion yet, or its latest version is disabled (cleared)
    if latest.tags.get(TAG_ROTATION_ID) != rotation_id:
        return None
    return latest.version, read_credential(latest.value, latest.content_type, None)


def read_pending(kv: KeyVaultSecrets, secret: str, version: str) -> Credential:
    """The pending credential named by the journal. Missing means the record is broken."""
    try:
        stored = kv.version(pending_name(secret), version)
    except (SecretNotFound, SecretNotRotatable) as exc:
        raise SecretNotRotatable(
            f"the pending credential (version {version} of {pending_name(secret)!r}) is gone "
            "or disabled; the rotation cannot continue"
        ) from exc
    return read_credential(stored.value, stored.content_type, None)


def clear_pending(kv: KeyVaultSecrets, secret: str, version: str) -> None:
    """Disable the pending version once the credential lives in the secret itself."""
    try:
        kv.disable_version(pending_name(secret), version)
    except SecretNotFound:
        return
