"""JSON shapes of the Key Vault secrets API (``SecretBundle``, ``SecretItem``, paging).

Kept apart from the store so the rules and their wire form can change independently, and
from the server so the shapes can be read next to the swagger they copy
(Azure/azure-rest-api-specs ``secrets.json``, protocols.md section 2.3). Keys are emitted in
the order the service emits them and absent properties are omitted, not ``null``, as in the
SDK recordings.

``previousVersion`` (2025-07-01) is not emitted: the swagger limits it to certificates
created after June 2025, and a plain secret never carries it.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any
from urllib.parse import urlencode

from twins.keyvault import errors
from twins.keyvault.store import RECOVERABLE_DAYS, RECOVERY_LEVEL, DeletedSecret, SecretVersion

MAX_PAGE_SIZE = 25


def attributes(version: SecretVersion) -> dict[str, Any]:
    """``SecretAttributes``: enabled, nbf/exp when set, created/updated, recovery info."""
    attrs: dict[str, Any] = {"enabled": version.enabled}
    if version.nbf is not None:
        attrs["nbf"] = version.nbf
    if version.exp is not None:
        attrs["exp"] = version.exp
    attrs.update(
        created=version.created,
        updated=version.updated,
        recoveryLevel=RECOVERY_LEVEL,
        recoverableDays=RECOVERABLE_DAYS,
    )
    return attrs


def _properties(base_url: str, version: SecretVersion, *, with_version: bool) -> dict[str, Any]:
    path = f"{base_url}/secrets/{version.name}"
    body: dict[str, Any] = {"id": f"{path}/{version.version}" if with_version else path}
    if version.content_type is not None:
        body["contentType"] = version.content_type
    body["attributes"] = attributes(version)
    if version.tags is not None:
        body["tags"] = dict(version.tags)
    return body


def secret_bundle(base_url: str, version: SecretVersion, *, with_value: bool) -> dict[str, Any]:
    """``SecretBundle``. Set and get carry the value; update and recover do not (recordings)."""
    body = {"value": version.value} if with_value else {}
    body.update(_properties(base_url, version, with_version=True))
    return body


def secret_item(base_url: str, version: SecretVersion, *, with_version: bool) -> dict[str, Any]:
    """``SecretItem``: the secrets listing uses the base id, the versions listing the full id."""
    return _properties(base_url, version, with_version=with_version)


def _deletion(base_url: str, deleted: DeletedSecret) -> dict[str, Any]:
    return {
        "recoveryId": f"{base_url}/deletedsecrets/{deleted.latest.name}",
        "deletedDate": deleted.deleted_date,
        "scheduledPurgeDate": deleted.scheduled_purge_date,
    }


def deleted_bundle(base_url: str, deleted: DeletedSecret) -> dict[str, Any]:
    """``DeletedSecretBundle``: deletion info plus the latest version, never its value."""
    body = _deletion(base_url, deleted)
    body.update(secret_bundle(base_url, deleted.latest, with_value=False))
    return body


def deleted_item(base_url: str, deleted: DeletedSecret) -> dict[str, Any]:
    """``DeletedSecretItem``: deletion info plus the base id (no version), as recorded."""
    body = _deletion(base_url, deleted)
    body.update(secret_item(base_url, deleted.latest, with_version=False))
    return body


def encode_skiptoken(marker: str) -> str:
    """Build an opaque ``$skiptoken`` shaped like the service's (base64 JSON, ``NextMarker``).

    URL-safe alphabet without padding, so the SDK's re-quoting of nextLink parameters is a
    no-op.
    """
    raw = json.dumps({"NextMarker": marker, "TargetLocation": 0}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode("utf-8")).decode("ascii").rstrip("=")


def decode_skiptoken(token: str) -> str:
    """Return the marker inside a ``$skiptoken``; 400 ``BadParameter`` if it is not ours."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        marker = json.loads(raw)["NextMarker"]
    except (binascii.Error, ValueError, KeyError, TypeError) as exc:
        raise errors.bad_parameter("The skip token is invalid.") from exc
    if not isinstance(marker, str):
        raise errors.bad_parameter("The skip token is invalid.")
    return marker


def parse_maxresults(raw: str | None) -> int:
    """Page size: default 25; 1..25 accepted (swagger ``minimum``/``maximum``), else 400.

    The message is the twin's (inference: no capture of the service's wording was found).
    """
    if raw is None or raw == "":
        return MAX_PAGE_SIZE
    try:
        size = int(raw)
    except ValueError:
        size = 0
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise errors.bad_parameter(
            f"Invalid value '{raw}' for maxresults: it must be an integer from 1 to {MAX_PAGE_SIZE}."
        )
    return size


def next_link(
    base_url: str, path: str, api_version: str, marker: str | None, maxresults: str | None
) -> str | None:
    """Full nextLink URL: same path, the request's api-version, ``$skiptoken``, maxresults.

    Real nextLinks carry ``maxresults`` only when the caller sent it (SDK recordings).
    """
    if marker is None:
        return None
    query: dict[str, str] = {"api-version": api_version, "$skiptoken": encode_skiptoken(marker)}
    if maxresults:
        query["maxresults"] = maxresults
    return f"{base_url}{path}?{urlencode(query, safe='$')}"


def list_result(items: list[dict[str, Any]], link: str | None) -> dict[str, Any]:
    """``SecretListResult`` / ``DeletedSecretListResult``: ``nextLink`` is ``null`` at the end."""
    return {"value": items, "nextLink": link}
