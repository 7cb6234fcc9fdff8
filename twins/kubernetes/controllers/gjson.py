"""The part of gjson (https://github.com/tidwall/gjson) ESO's azurekv ``getProperty`` relies on.

``remoteRef.property`` is a gjson path into the secret's JSON value: keys separated by ``.``,
``\\.`` for a literal dot, a number indexing an array. :func:`get` returns what
``gjson.Get(json, path).String()`` returns, or ``None`` when ``Exists()`` is false:

- a string: its decoded text; a number: its text as written; ``true``/``false``;
- ``null``: the empty string (it exists);
- an object or array: its raw JSON text exactly as written in the value (whitespace kept).

Not supported (they select nothing here): wildcards ``*`` and ``?``, ``#`` queries and
modifiers (``@reverse``...). :func:`raw_object` is ``json.Unmarshal`` into
``map[string]json.RawMessage``: the top-level members with their raw text, as
``dataFrom[].extract`` needs them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from json.decoder import scanstring  # type: ignore[attr-defined]

_DECODER = json.JSONDecoder()
_WHITESPACE = " \t\n\r"


def _skip(text: str, index: int) -> int:
    while index < len(text) and text[index] in _WHITESPACE:
        index += 1
    return index


def _span(text: str, index: int) -> tuple[int, int]:
    """Start and end of the JSON value at ``index`` (after whitespace)."""
    start = _skip(text, index)
    _, end = _DECODER.raw_decode(text, start)
    return start, end


def _members(text: str, start: int) -> Iterator[tuple[str, int, int]]:
    """``(key, value start, value end)`` of the object whose ``{`` is at ``start``."""
    index = _skip(text, start + 1)
    if index < len(text) and text[index] == "}":
        return
    while True:
        if index >= len(text) or text[index] != '"':
            raise ValueError("expected a key")
        key, index = scanstring(text, index + 1)
        index = _skip(text, index)
        if index >= len(text) or text[index] != ":":
            raise ValueError("expected ':'")
        value_start, value_end = _span(text, index + 1)
        yield key, value_start, value_end
        index = _skip(text, value_end)
        if index < len(text) and text[index] == ",":
            index = _skip(text, index + 1)
            continue
        if index < len(text) and text[index] == "}":
            return
        raise ValueError("expected ',' or '}'")


def _elements(text: str, start: int) -> Iterator[tuple[int, int]]:
    """``(start, end)`` of each element of the array whose ``[`` is at ``start``."""
    index = _skip(text, start + 1)
    if index < len(text) and text[index] == "]":
        return
    while True:
        value_start, value_end = _span(text, index)
        yield value_start, value_end
        index = _skip(text, value_end)
        if index < len(text) and text[index] == ",":
            index += 1
            continue
        if index < len(text) and text[index] == "]":
            return
        raise ValueError("expected ',' or ']'")


def _components(path: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    escaped = False
    for char in path:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ".":
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def _lookup(text: str, path: str) -> tuple[int, int] | None:
    try:
        start, end = _span(text, 0)
    except ValueError:
        return None
    for component in _components(path):
        if text[start] == "{":
            found = None
            for key, value_start, value_end in _members(text, start):
                if key == component and found is None:
                    found = (value_start, value_end)  # gjson takes the first match
            if found is None:
                return None
            start, end = found
        elif text[start] == "[" and component.isdigit():
            elements = list(_elements(text, start))
            position = int(component)
            if position >= len(elements):
                return None
            start, end = elements[position]
        else:
            return None
    return start, end


def get(text: str, path: str) -> str | None:
    """``gjson.Get(text, path).String()``, or None if the path selects nothing."""
    try:
        span = _lookup(text, path)
    except ValueError:
        return None
    if span is None:
        return None
    raw = text[span[0] : span[1]]
    first = raw[0]
    if first == '"':
        value: str = json.loads(raw)
        return value
    if first == "n":
        return ""
    return raw


def raw_object(text: str) -> dict[str, str | bytes]:
    """Members of a JSON object: strings decoded (``str``), anything else as raw JSON (``bytes``).

    ``ValueError`` if ``text`` is not a JSON object, as ``json.Unmarshal`` fails.
    """
    start, end = _span(text, 0)
    if _skip(text, end) != len(text):
        raise ValueError("invalid character after top-level value")
    if text[start] != "{":
        raise ValueError(
            f"json: cannot unmarshal {_json_type(text[start])} into Go value of type "
            "map[string]json.RawMessage"
        )
    members: dict[str, str | bytes] = {}
    for key, value_start, value_end in _members(text, start):
        raw = text[value_start:value_end]
        if raw.startswith('"'):
            members[key] = json.loads(raw)
        elif raw == "null":
            members[key] = ""  # Unmarshal of null into a string leaves it empty, no error
        else:
            members[key] = raw.encode("utf-8")
    return members


def _json_type(first: str) -> str:
    return {"[": "array", '"': "string", "t": "bool", "f": "bool", "n": "null"}.get(first, "number")
