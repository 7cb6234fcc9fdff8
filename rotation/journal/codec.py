"""RotationRecord <-> the flat row every backend stores.

A row's data is a flat ``dict[str, str | int | float | bool]``, because Azure Tables entities
are flat and the other backends store the same thing:

- datetimes are ISO 8601 strings in UTC with microseconds (``2026-11-28T22:59:56.538612+00:00``):
  they sort as text, and avoid the Tables ``DateTime`` type's 1601 floor and 100 ns rounding.
  Naive datetimes are refused: the journal only knows instants.
- ``steps`` is one compact JSON string; ``propagation`` is one too, split over properties
  ``propagation``, ``propagation_1``, … of at most :data:`MAX_TEXT_CHARS` characters each
  (a rotation may track hundreds of consumers; Tables allows 1 MiB per entity).
- a field that is ``None`` is left out of the row, and a missing property reads back as
  ``None``, so nothing the caller did not set is invented.
- ``v`` is the row format's version, for a later migration.

A string property may hold at most :data:`MAX_TEXT_CHARS` characters (Tables: 64 KiB of
UTF-16); the journal caps ``last_error`` below that before it is stored.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal, get_args

from rotation.journal.errors import InvalidTransition, JournalError
from rotation.journal.model import (
    STEPS,
    Ownership,
    Purpose,
    RotationRecord,
    Status,
    StepTiming,
    TriggerSource,
)
from rotation.propagation import progress

Scalar = str | int | float | bool
RowData = dict[str, Scalar]

FORMAT_VERSION = 1
MAX_TEXT_CHARS = 30_000
INT32_MAX = 2**31 - 1

Kind = Literal["text", "optional-text", "instant", "optional-instant", "int", "steps",
               "propagation"]
#: At most this many properties hold one propagation (12 x 30,000 UTF-16 characters < 1 MiB).
MAX_CHUNKS = 12

#: How each RotationRecord field is stored (``etag`` is the row's, never a property).
FIELD_KINDS: dict[str, Kind] = {
    "rotation_id": "text",
    "vault": "text",
    "secret": "text",
    "from_version": "text",
    "trigger_source": "text",
    "trigger_reference": "text",
    "trigger_event_type": "optional-text",
    "created_at": "instant",
    "updated_at": "instant",
    "status": "text",
    "step": "text",
    "attempts": "int",
    "last_error": "optional-text",
    "next_attempt_at": "optional-instant",
    "lease_owner": "optional-text",
    "lease_until": "optional-instant",
    "pending_secret": "optional-text",
    "pending_version": "optional-text",
    "new_version": "optional-text",
    "new_expiry": "optional-instant",
    "previous_username": "optional-text",
    "retire_after": "optional-instant",
    "finished_at": "optional-instant",
    "steps": "steps",
    "trace_parent": "optional-text",
    "target_id": "optional-text",
    "ownership": "optional-text",
    "minting": "optional-text",
    "leftovers": "optional-text",
    "purpose": "optional-text",
    "propagation": "propagation",
    "published": "optional-text",
}

_CHOICES: dict[str, frozenset[str]] = {
    "status": frozenset(get_args(Status)),
    "step": frozenset(STEPS),
    "trigger_source": frozenset(get_args(TriggerSource)),
    "ownership": frozenset(get_args(Ownership)),
    "purpose": frozenset(get_args(Purpose)),
}


def instant(value: datetime, what: str) -> str:
    """``value`` as the journal's UTC text; refuses naive datetimes."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be a timezone-aware datetime, got a naive one")
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def parse_instant(text: str) -> datetime:
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        raise ValueError(f"stored instant {text!r} has no offset")
    return parsed.astimezone(UTC)


def encode(record: RotationRecord) -> RowData:
    """The row for ``record``. Raises ValueError for naive datetimes, InvalidTransition for
    values no backend can store."""
    row: RowData = {"v": FORMAT_VERSION}
    for name, kind in FIELD_KINDS.items():
        value = getattr(record, name)
        if value is None or (name == "purpose" and value == "rotation"):  # the default
            if not kind.startswith("optional-") and kind != "propagation":
                raise InvalidTransition(f"rotation field {name} must not be None")
            continue
        row.update(_encode_field(name, kind, value))
        if name in _CHOICES and value not in _CHOICES[name]:
            raise InvalidTransition(f"rotation field {name} has an unknown value {value!r}")
    for name, value in row.items():
        if isinstance(value, str) and len(value) > MAX_TEXT_CHARS:
            raise InvalidTransition(f"rotation field {name} is longer than {MAX_TEXT_CHARS} characters")
    return row


def _encode_field(name: str, kind: Kind, value: Any) -> RowData:
    if kind in ("instant", "optional-instant"):
        return {name: instant(value, name)}
    if kind == "int":
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= INT32_MAX:
            raise InvalidTransition(f"rotation field {name} must be an int in 0..{INT32_MAX}")
        return {name: value}
    if kind == "steps":
        return {name: _encode_steps(value)}
    if kind == "propagation":
        return _chunks(name, progress.encode(value))
    if not isinstance(value, str):
        raise InvalidTransition(f"rotation field {name} must be a str")
    return {name: value}


def decode(data: Mapping[str, Scalar], *, etag: str | None) -> RotationRecord:
    """The record stored in ``data``. Raises JournalError when the row is not one."""
    fields: dict[str, Any] = {}
    version = data.get("v", FORMAT_VERSION)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise JournalError(f"stored rotation row has format {version!r}; this akv-rotator reads "
                           f"up to {FORMAT_VERSION}")
    try:
        for name, kind in FIELD_KINDS.items():
            fields[name] = _decode_field(name, kind, data)
            if name in _CHOICES and fields[name] is not None and fields[name] not in _CHOICES[name]:
                raise JournalError(f"stored rotation row has an unknown {name} {fields[name]!r}")
    except (ValueError, TypeError, KeyError) as exc:
        raise JournalError(f"stored rotation row is malformed: {type(exc).__name__}: {exc}") from exc
    return RotationRecord(**fields, etag=etag)


def _decode_field(name: str, kind: Kind, data: Mapping[str, Scalar]) -> Any:
    value = data.get(name)
    if kind == "propagation":
        text = _joined(name, data)
        return progress.decode(text) if text else None
    if value is None:
        if name == "purpose":
            return "rotation"  # rows written before propagation records existed
        if kind == "steps":
            return ()
        if kind.startswith("optional-"):
            return None
        raise JournalError(f"stored rotation row lacks {name}")
    if kind in ("instant", "optional-instant"):
        return parse_instant(str(value))
    if kind == "int":
        return int(value)
    if kind == "steps":
        return _decode_steps(str(value))
    return str(value)


def _chunks(name: str, text: str) -> RowData:
    """``text`` over ``name``, ``name_1``, …: Tables caps one string property."""
    pieces = [text[i:i + MAX_TEXT_CHARS] for i in range(0, len(text), MAX_TEXT_CHARS)]
    if len(pieces) > MAX_CHUNKS:
        raise InvalidTransition(f"rotation field {name} needs more than {MAX_CHUNKS} properties")
    return {(name if i == 0 else f"{name}_{i}"): piece for i, piece in enumerate(pieces)}


def _joined(name: str, data: Mapping[str, Scalar]) -> str:
    parts = [data.get(name)] + [data.get(f"{name}_{i}") for i in range(1, MAX_CHUNKS)]
    return "".join(str(part) for part in parts if part is not None)


def _encode_steps(steps: tuple[StepTiming, ...]) -> str:
    items = []
    for timing in steps:
        if timing.step not in _CHOICES["step"]:
            raise InvalidTransition(f"step timing names an unknown step {timing.step!r}")
        items.append({
            "step": timing.step,
            "completed_at": instant(timing.completed_at, "StepTiming.completed_at"),
            "duration_ms": float(timing.duration_ms),
            "attempt": int(timing.attempt),
        })
    return json.dumps(items, separators=(",", ":"))


def _decode_steps(text: str) -> tuple[StepTiming, ...]:
    timings = []
    for item in json.loads(text):
        if item["step"] not in _CHOICES["step"]:
            raise ValueError(f"step timing names an unknown step {item['step']!r}")
        timings.append(StepTiming(
            step=item["step"],
            completed_at=parse_instant(item["completed_at"]),
            duration_ms=float(item["duration_ms"]),
            attempt=int(item["attempt"]),
        ))
    return tuple(timings)
