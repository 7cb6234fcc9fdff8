"""What the controllers compute exactly as the Go programs they stand in for compute it.

- :func:`go_format` renders a value as Go's ``fmt.Sprintf("%+v", v)`` does for the few types
  ESO hashes: strings raw, ``[]byte`` as decimal bytes (``[118 97 108]``), maps with sorted
  keys (``map[a:x b:y]``, Go sorts map keys when printing since 1.12), a nil map as ``map[]``,
  a nil interface as ``<nil>``, and structs (:class:`GoStruct`) as ``{field:value ...}``;
- :func:`object_hash` is ESO's ``esutils.ObjectHash``: hex SHA3-224 of that rendering
  (``runtime/esutils/utils.go:426`` at v2.9.0; releases before 0.10 used MD5). The vectors of
  ESO's own ``TestObjectHash`` hold (see the tests);
- :func:`go_json` is ``json.Marshal`` of a string map;
- :func:`parse_duration` is Go's ``time.ParseDuration`` (``"1h0m0s"``, ``"90s"``, ``"0"``);
- :func:`parse_bool` is ``strconv.ParseBool``;
- :func:`rfc3339` formats a Unix time as ``metav1.Time`` serializes it (UTC, whole seconds);
- :func:`go_search` is Go's ``regexp.MatchString`` (RE2 syntax, unanchored), through the
  ``google-re2`` binding the project already depends on; a pattern that does not compile
  matches nothing, as ESO and Reloader drop the error.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import re2

_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "\u00b5s": 1e-6,  # micro sign
    "\u03bcs": 1e-6,  # Greek mu
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_DURATION_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)")
_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})


@dataclass(frozen=True)
class GoStruct:
    """A Go struct value for :func:`go_format`: its fields in declaration order."""

    fields: tuple[tuple[str, Any], ...]


def go_format(value: Any) -> str:
    """``fmt.Sprintf("%+v", value)`` for strings, bytes, string-keyed maps, ``None`` and structs."""
    if value is None:
        return "<nil>"
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray):
        return "[" + " ".join(str(byte) for byte in value) + "]"
    if isinstance(value, GoStruct):
        return "{" + " ".join(f"{name}:{_in_struct(field)}" for name, field in value.fields) + "}"
    if isinstance(value, Mapping):
        return "map[" + " ".join(f"{key}:{go_format(value[key])}" for key in sorted(value)) + "]"
    raise TypeError(f"no Go rendering for {type(value).__name__}")


def _in_struct(field: Any) -> str:
    # a nil map field prints as map[], not <nil> (only a nil interface prints <nil>)
    return "map[]" if field is None else go_format(field)


def object_hash(value: Any) -> str:
    """ESO's ``esutils.ObjectHash``: hex SHA3-224 of ``%+v``."""
    return hashlib.sha3_224(go_format(value).encode("utf-8")).hexdigest()


def meta_hash(annotations: Mapping[str, str] | None, labels: Mapping[str, str] | None) -> str:
    """ESO's ``HashMeta``: the hash of the struct ``{annotations, labels}``."""
    return object_hash(GoStruct((("annotations", annotations), ("labels", labels))))


def resource_version(metadata: Mapping[str, Any]) -> str:
    """ESO's ``GetResourceVersion``: ``"<generation>-<meta hash>"`` (``syncedResourceVersion``)."""
    generation = int(metadata.get("generation") or 0)
    return f"{generation}-{meta_hash(metadata.get('annotations'), metadata.get('labels'))}"


def go_json(value: Any) -> str:
    """``json.Marshal``: map keys sorted, compact, ``<``, ``>``, ``&``, U+2028/9 escaped."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    for char, escape in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(char, escape)
    return text


def parse_duration(text: str) -> float:
    """Go's ``time.ParseDuration`` in seconds; ``ValueError`` for what Go refuses."""
    original = text
    sign = 1.0
    if text[:1] in "+-" and text:
        sign = -1.0 if text[0] == "-" else 1.0
        text = text[1:]
    if text == "0":
        return 0.0
    if not text:
        raise ValueError(f'time: invalid duration "{original}"')
    total = 0.0
    position = 0
    while position < len(text):
        match = _DURATION_PART.match(text, position)
        if match is None:
            raise ValueError(f'time: invalid duration "{original}"')
        total += float(match[1]) * _DURATION_UNITS[match[2]]
        position = match.end()
    return sign * total


def parse_bool(text: str) -> bool | None:
    """``strconv.ParseBool``: True, False, or None where Go returns an error."""
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    return None


def rfc3339(unix: float) -> str:
    """A Unix time as ``metav1.Time`` marshals it: RFC 3339, UTC, whole seconds."""
    return datetime.fromtimestamp(int(unix), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(text: str) -> float | None:
    """The Unix time of an RFC 3339 timestamp, or None if it is not one."""
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


@functools.lru_cache(maxsize=256)
def _compiled(pattern: str) -> Any:
    try:
        return re2.compile(pattern)
    except re2.error:
        return None


def go_search(pattern: str, text: str) -> bool:
    """Go's ``regexp.MatchString(pattern, text)``; False when ``pattern`` does not compile."""
    compiled = _compiled(pattern)
    return compiled is not None and compiled.search(text) is not None


def go_compiles(pattern: str) -> bool:
    """Whether Go's ``regexp.Compile`` would accept ``pattern`` (as far as RE2 tells)."""
    return _compiled(pattern) is not None
