"""Label and field selectors, as ``?labelSelector=`` and ``?fieldSelector=`` filter a list.

Label selectors follow https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors
and ``k8s.io/apimachinery/pkg/labels/selector.go``: comma-separated requirements, each one of
``key``, ``!key``, ``key=v`` / ``key==v``, ``key!=v`` (also true when the label is absent),
``key in (a,b)``, ``key notin (a,b)`` (also true when absent), ``key>n``, ``key<n``.

Field selectors follow https://kubernetes.io/docs/concepts/overview/working-with-objects/field-selectors/:
``field=v``, ``field==v``, ``field!=v``, on the fields the resource supports (every resource:
``metadata.name`` and ``metadata.namespace``; Secrets also ``type``; a CRD also its
``selectableFields``). Any other field is a 400, worded as the API server words it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from twins.kubernetes import errors
from twins.kubernetes.kinds import Obj

_KEY = r"[A-Za-z0-9][-A-Za-z0-9_./]*"
_VALUE = r"[-A-Za-z0-9_.]*"
_NOT_EXISTS = re.compile(rf"^!\s*({_KEY})$")
_SET = re.compile(rf"^({_KEY})\s+(in|notin)\s*\(([^()]*)\)$")
_COMPARE = re.compile(rf"^({_KEY})\s*(==|=|!=|>|<)\s*({_VALUE})$")
_EXISTS = re.compile(rf"^({_KEY})$")


@dataclass(frozen=True)
class Requirement:
    """One label requirement: ``key``, an operator and its values."""

    key: str
    operator: str  # exists, !exists, =, !=, in, notin, gt, lt
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether ``labels`` satisfy this requirement."""
        present = self.key in labels
        value = labels.get(self.key)
        if self.operator == "exists":
            return present
        if self.operator == "!exists":
            return not present
        if self.operator in ("=", "in"):
            return present and value in self.values
        if self.operator in ("!=", "notin"):
            return not present or value not in self.values
        try:
            number, bound = int(value or ""), int(self.values[0])
        except ValueError:
            return False
        return number > bound if self.operator == "gt" else number < bound


def _split_top_level(text: str) -> list[str]:
    """Split at commas outside parentheses (``a in (x,y),b`` is two requirements)."""
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def parse_label_selector(text: str | None) -> list[Requirement]:
    """Parse ``?labelSelector=``; an empty selector matches everything. 400 when malformed."""
    if not text or not text.strip():
        return []
    requirements = []
    for raw in _split_top_level(text):
        requirements.append(_requirement(raw.strip(), text))
    return requirements


def _requirement(part: str, whole: str) -> Requirement:
    if match := _NOT_EXISTS.match(part):
        return Requirement(match.group(1), "!exists")
    if match := _SET.match(part):
        values = tuple(v.strip() for v in match.group(3).split(","))
        if not all(re.fullmatch(_VALUE, v) for v in values):
            raise _unparsable(whole, part)
        return Requirement(match.group(1), match.group(2), values)
    if match := _COMPARE.match(part):
        operator = {"==": "=", ">": "gt", "<": "lt"}.get(match.group(2), match.group(2))
        if operator in ("gt", "lt") and not re.fullmatch(r"-?\d+", match.group(3)):
            raise _unparsable(whole, part)
        return Requirement(match.group(1), operator, (match.group(3),))
    if match := _EXISTS.match(part):
        return Requirement(match.group(1), "exists")
    raise _unparsable(whole, part)


def _unparsable(whole: str, part: str) -> errors.ApiError:
    return errors.bad_request(f"unable to parse requirement: {part!r} in label selector {whole!r}")


def labels_match(requirements: Iterable[Requirement], obj: Obj) -> bool:
    """Whether the object's ``metadata.labels`` satisfy every requirement."""
    labels = obj.get("metadata", {}).get("labels") or {}
    return all(r.matches(labels) for r in requirements)


@dataclass(frozen=True)
class FieldRequirement:
    """``field``, ``=`` or ``!=``, and a value."""

    field: str
    operator: str
    value: str

    def matches(self, actual: str) -> bool:
        """Whether the object's field value satisfies this requirement."""
        return (actual == self.value) == (self.operator == "=")


FieldGetter = Callable[[Obj], str]


def parse_field_selector(
    text: str | None, supported: Mapping[str, FieldGetter], *, custom: bool
) -> list[tuple[FieldRequirement, FieldGetter]]:
    """Parse ``?fieldSelector=`` against the ``supported`` fields of the resource (400 otherwise).

    ``custom`` picks the message for an unsupported field: CRDs name their selectable fields,
    built-ins say "field label not supported".
    """
    if not text or not text.strip():
        return []
    parsed = []
    for raw in _split_top_level(text):
        match = re.fullmatch(r"\s*([^=!\s]+)\s*(==|=|!=)\s*(.*?)\s*", raw)
        if match is None:
            raise errors.bad_request(f"invalid selector: '{text}'; can't understand '{raw}'")
        name, operator, value = match.group(1), match.group(2), match.group(3)
        getter = supported.get(name)
        if getter is None:
            if custom:
                known = ", ".join(f'"{f}"' for f in supported)
                raise errors.bad_request(f'"{name}" is not a known field selector: only {known}')
            raise errors.bad_request(f"field label not supported: {name}")
        parsed.append((FieldRequirement(name, "!=" if operator == "!=" else "=", value), getter))
    return parsed


def fields_match(requirements: Iterable[tuple[FieldRequirement, FieldGetter]], obj: Obj) -> bool:
    """Whether the object satisfies every field requirement."""
    return all(requirement.matches(getter(obj)) for requirement, getter in requirements)


def path_getter(json_path: str) -> FieldGetter:
    """A getter for a simple ``.a.b.c`` (or ``a.b.c``) path; a missing field reads as ``""``."""
    keys = json_path.lstrip(".").split(".")

    def get(obj: Obj) -> str:
        value: Any = obj
        for key in keys:
            if not isinstance(value, dict):
                return ""
            value = value.get(key)
        if value is None:
            return ""
        return value if isinstance(value, str) else str(value)

    return get
