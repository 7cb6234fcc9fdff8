"""Key Vault events from Event Grid, parsed once into one typed value.

Microsoft documents PascalCase ``data`` keys (``Id``, ``VaultName``, ``ObjectType``,
``ObjectName``, ``Version``, ``NBF``, ``EXP``), but its own published samples have used
camelCase keys, keys and values with stray spaces, and ``NBF``/``EXP`` as numbers, numeric
strings or ``null``. This module accepts every one of those shapes and nothing looser:
keys are matched case-insensitively after stripping, values are stripped, and timestamps
must be Unix seconds. See ../shared/reference/protocols.md §1.3 for the history.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from rotation.errors import InvalidRequest
from rotation.ids import SecretName, VaultName, VersionId

EVENT_PREFIX = "Microsoft.KeyVault."
EventKind = Literal["SecretNearExpiry", "SecretExpired", "SecretNewVersionCreated"]
HANDLED_KINDS: tuple[EventKind, ...] = ("SecretNearExpiry", "SecretExpired", "SecretNewVersionCreated")
ROTATING_KINDS: frozenset[EventKind] = frozenset({"SecretNearExpiry", "SecretExpired"})

# Names are checked with fullmatch: with match, "$" also matches before a final newline, so
# a vault "kv-test\n" taken from a garbled Id passed as a Key Vault name.
_VAULT_IN_TOPIC = re.compile(r"/providers/Microsoft\.KeyVault/vaults/([^/\s]+)", re.IGNORECASE)
_VAULT_NAME = re.compile(r"^[0-9A-Za-z](?:[0-9A-Za-z]|-(?=[0-9A-Za-z])){2,23}$")
_SECRET_NAME = re.compile(r"^[0-9A-Za-z-]{1,127}$")
_VERSION = re.compile(r"^[0-9A-Za-z]{1,64}$")
MAX_FIELD_CHARS = 1024  # longer envelope fields are refused, never logged whole
_VAULT_IN_ID = re.compile(r"^https://([^./]+)\.vault\.", re.IGNORECASE)
_VERSION_IN_ID = re.compile(r"/secrets/[^/]+/([0-9A-Za-z]+)/?$")


class InvalidEvent(InvalidRequest):
    """An event of a handled type whose payload lacks or garbles what we need."""


@dataclass(frozen=True, slots=True)
class KeyVaultEvent:
    """One Key Vault secret event, whatever casing or spacing it arrived in."""

    event_id: str
    kind: EventKind
    vault: VaultName
    secret: SecretName
    version: VersionId
    not_before: datetime | None
    expires_on: datetime | None
    event_time: datetime | None

    @property
    def asks_for_rotation(self) -> bool:
        """Near-expiry and expired events ask for a rotation; new-version events do not."""
        return self.kind in ROTATING_KINDS


@dataclass(frozen=True, slots=True)
class UnhandledEvent:
    """An event we acknowledge and ignore: another type, or not about a secret."""

    event_id: str
    event_type: str
    reason: str


def parse_event(
    *,
    event_id: Any,
    event_type: Any,
    topic: Any,
    subject: Any,
    data: Any,
    event_time: datetime | None = None,
) -> KeyVaultEvent | UnhandledEvent:
    """Turn the fields of an event (Event Grid schema, or CloudEvents 1.0 mapped onto the same
    names: ``type``, ``source``, ``time``) into a :class:`KeyVaultEvent`.

    The fields are typed ``Any`` because they are whatever the sender put on the wire.
    Returns :class:`UnhandledEvent` for types we do not act on. Raises :class:`InvalidEvent`
    when a handled event is missing what identifies the secret version, naming what is wrong.
    """
    eid = _envelope_text(event_id, "id")
    etype = _envelope_text(event_type, "eventType")
    topic = _envelope_text(topic, "topic")
    subject = _envelope_text(subject, "subject")
    if not isinstance(event_time, datetime):
        event_time = None
    if not etype:
        raise InvalidEvent(
            "event has no type (eventType in the Event Grid schema, type in CloudEvents 1.0); "
            "a CloudEvents delivery reads like this when the worker loads an azure-functions "
            "older than 1.25: set PYTHON_ISOLATE_WORKER_DEPENDENCIES=1 (docs/adr/0006)"
        )
    kind = _handled_kind(etype)
    if kind is None:
        return UnhandledEvent(eid, etype, "event type is not one akv-rotator handles")

    fields = _normalise_data(data)
    object_type = fields.get("objecttype")
    if object_type and object_type.lower() != "secret":
        return UnhandledEvent(eid, etype, f"object type {_short(object_type)} is not a secret")

    problems: list[str] = []
    vault = _vault_name(fields, topic, problems)
    if vault and not _VAULT_NAME.fullmatch(vault):
        problems.append("the vault name is not a Key Vault name")
    secret = fields.get("objectname") or subject
    if not secret:
        problems.append("no ObjectName in data and no subject")
    elif not _SECRET_NAME.fullmatch(secret):
        problems.append("ObjectName is not a Key Vault secret name")
    version = fields.get("version") or _version_from_id(fields.get("id")) or ""
    if not version:
        problems.append("no Version in data and none in Id")
    elif not _VERSION.fullmatch(version):
        problems.append("Version is not a Key Vault version id")
    not_before = _timestamp(fields, "nbf", problems)
    expires_on = _timestamp(fields, "exp", problems)
    if problems:
        raise InvalidEvent(f"malformed {etype} event {eid or '<no id>'}: " + "; ".join(problems))
    return KeyVaultEvent(
        event_id=eid,
        kind=kind,
        vault=VaultName(vault.lower()),
        secret=SecretName(secret),
        version=VersionId(version.lower()),
        not_before=not_before,
        expires_on=expires_on,
        event_time=event_time,
    )


def _short(text: str) -> str:
    """A sender's value quoted for a message, cut to a length a log line can carry."""
    return repr(text[:80] + ("…" if len(text) > 80 else ""))


def _envelope_text(value: Any, name: str) -> str:
    """An envelope field as stripped text; '' when absent. Refuses other types and huge ones."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidEvent(f"event {name} must be a string, got {type(value).__name__}")
    if len(value) > MAX_FIELD_CHARS:
        raise InvalidEvent(f"event {name} is longer than {MAX_FIELD_CHARS} characters")
    return value.strip()


def _handled_kind(event_type: str) -> EventKind | None:
    for kind in HANDLED_KINDS:
        if event_type.lower() == (EVENT_PREFIX + kind).lower():
            return kind
    return None


def _normalise_data(data: Any) -> dict[str, str | None]:
    """Lower-case and strip the keys, strip string values; JSON text is decoded first."""
    if isinstance(data, (str, bytes)):
        try:
            data = json.loads(data)
        except (ValueError, RecursionError) as exc:
            raise InvalidEvent("event data is not a JSON object") from exc
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise InvalidEvent(f"event data must be a JSON object, got {type(data).__name__}")
    out: dict[str, str | None] = {}
    for key, value in data.items():
        norm_key = str(key).strip().lower()
        if value is None:
            out[norm_key] = None
        elif isinstance(value, str):
            out[norm_key] = value.strip() or None
        elif isinstance(value, bool):
            out[norm_key] = str(value)
        elif isinstance(value, (int, float)):
            out[norm_key] = repr(value)
        else:
            # Objects and arrays are never what a Key Vault field holds; a placeholder makes
            # a needed field fail its check with a clear message, without walking the value.
            out[norm_key] = f"<{type(value).__name__}>"
    return out


def _vault_name(fields: Mapping[str, str | None], topic: str | None, problems: list[str]) -> str:
    named = fields.get("vaultname")
    in_topic = _VAULT_IN_TOPIC.search(topic or "")
    from_topic = in_topic.group(1) if in_topic else None
    in_id = _VAULT_IN_ID.search(fields.get("id") or "")
    from_id = in_id.group(1) if in_id else None
    if named and from_topic and named.lower() != from_topic.lower():
        problems.append(f"VaultName {_short(named)} disagrees with the topic's vault "
                        f"{_short(from_topic)}")
    vault = named or from_topic or from_id
    if not vault:
        problems.append("no VaultName in data and no vault in topic or Id")
        return ""
    return vault


def _version_from_id(object_id: str | None) -> str | None:
    found = _VERSION_IN_ID.search(object_id or "")
    return found.group(1) if found else None


def _timestamp(fields: Mapping[str, str | None], key: str, problems: list[str]) -> datetime | None:
    raw = fields.get(key)
    if raw is None:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        problems.append(f"{key.upper()} must be Unix seconds, got {_short(raw)}")
        return None
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        problems.append(f"{key.upper()} {_short(raw)} is out of range")
        return None
