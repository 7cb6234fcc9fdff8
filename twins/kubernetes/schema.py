"""CRD schemas: load ``openAPIV3Schema`` from CRD files, then prune, default and validate.

What the API server does with a custom resource on every write, in its order
(https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#validation):

1. **prune** fields the structural schema does not declare (unless
   ``x-kubernetes-preserve-unknown-fields``), reporting them so the request can be refused
   (``fieldValidation=Strict``) or warned about (the default ``Warn``);
2. **default**: fill ``default`` values of absent properties, top down, inside objects that
   are present; a ``null`` of a non-nullable field with a default is replaced by it;
3. **validate** against the OpenAPI v3 subset structural schemas use, wording each error as
   ``apiextensions-apiserver``'s ``kubeOpenAPIResultToFieldErrors`` does: ``type``,
   ``nullable``, ``x-kubernetes-int-or-string``, ``enum``, ``required``, ``properties``,
   ``additionalProperties``, ``items``, ``minLength``/``maxLength``, ``pattern``,
   ``format`` (byte, date-time, int32, int64), ``minimum``/``maximum``,
   ``minItems``/``maxItems``, ``minProperties``/``maxProperties``, ``anyOf``, and
   ``x-kubernetes-list-type`` set/map uniqueness.

Not evaluated: ``x-kubernetes-validations`` (CEL; in the ESO CRDs only on non-Azure store
providers), ratcheting of unchanged invalid values, ``oneOf``/``not``/``allOf`` (unused by the
ESO CRDs). ``metadata`` is left to :mod:`twins.kubernetes.validation`, as the server validates
it as ``ObjectMeta`` rather than through the schema.

Only PyYAML is needed, and only when CRD files are loaded.
"""

from __future__ import annotations

import base64
import binascii
import copy
import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from twins.kubernetes import errors
from twins.kubernetes.errors import FieldError
from twins.kubernetes.kinds import Obj

ROOT_FIELDS = frozenset({"apiVersion", "kind", "metadata"})


@dataclass(frozen=True)
class CrdVersion:
    """One version of a CRD: its schema and its ``selectableFields`` JSON paths."""

    schema: Obj
    selectable_fields: tuple[str, ...] = ()


@dataclass
class CrdSchemas:
    """Schemas of every CRD found in a directory, by (group, plural, version)."""

    versions: dict[tuple[str, str, str], CrdVersion] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)

    @classmethod
    def load(cls, directory: Path) -> CrdSchemas:
        """Every ``*.yaml``/``*.yml`` CustomResourceDefinition in ``directory``.

        Parsed once per process and set of file versions (the ESO CRDs are 27k lines: parsing
        them for every twin would dominate test time); schemas are never mutated.
        """
        paths = sorted([*directory.resolve().glob("*.yaml"), *directory.resolve().glob("*.yml")])
        stamps = tuple((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in paths)
        return _load(stamps)

    def add(self, crd: Obj) -> None:
        """Register every version of one CustomResourceDefinition object."""
        spec = crd["spec"]
        for version in spec["versions"]:
            selectable = tuple(f["jsonPath"] for f in version.get("selectableFields") or [])
            self.versions[(spec["group"], spec["names"]["plural"], version["name"])] = CrdVersion(
                version["schema"]["openAPIV3Schema"], selectable
            )

    def get(self, group: str, plural: str, version: str) -> CrdVersion | None:
        """The schema of one served version, if its CRD was loaded."""
        return self.versions.get((group, plural, version))


@functools.lru_cache(maxsize=8)
def _load(stamps: tuple[tuple[str, int, int], ...]) -> CrdSchemas:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when built with it: 10x faster
    schemas = CrdSchemas()
    for name, _, _ in stamps:
        path = Path(name)
        for document in yaml.load_all(path.read_text(encoding="utf-8"), Loader=loader):
            if isinstance(document, dict) and document.get("kind") == "CustomResourceDefinition":
                schemas.add(document)
                schemas.files.append(path)
    return schemas


@dataclass
class Outcome:
    """What admission through a schema produced: the object, pruned paths, field errors."""

    obj: Obj
    pruned: list[str] = field(default_factory=list)
    errors: list[FieldError] = field(default_factory=list)


def admit(schema: Obj, obj: Obj) -> Outcome:
    """Prune, default and validate a whole object (``metadata`` excepted) against ``schema``."""
    result = copy.deepcopy(obj)
    outcome = Outcome(result)
    properties = schema.get("properties") or {}
    for key in list(result):
        if key in ROOT_FIELDS:
            continue
        if key not in properties:
            outcome.pruned.append(key)
            del result[key]
            continue
        result[key] = _prune(properties[key], result[key], key, outcome.pruned)
    for key, sub in properties.items():
        if key in ROOT_FIELDS:
            continue
        if key not in result and "default" in sub:
            result[key] = copy.deepcopy(sub["default"])
        if key in result:
            result[key] = _default(sub, result[key])
    for key in schema.get("required") or []:
        if key not in result and key not in ROOT_FIELDS:
            outcome.errors.append(errors.required(key))
    for key, sub in properties.items():
        if key not in ROOT_FIELDS and key in result:
            outcome.errors.extend(_validate(sub, result[key], key))
    return outcome


# -- pruning ------------------------------------------------------------------------------


def _prune(schema: Obj, value: Any, path: str, pruned: list[str]) -> Any:
    if isinstance(value, dict) and _is_object(schema):
        if schema.get("x-kubernetes-preserve-unknown-fields"):
            return value
        properties = schema.get("properties")
        additional = schema.get("additionalProperties")
        for key in list(value):
            child = f"{path}.{key}"
            if properties is not None and key in properties:
                value[key] = _prune(properties[key], value[key], child, pruned)
            elif isinstance(additional, dict):
                value[key] = _prune(additional, value[key], f"{path}[{key}]", pruned)
            elif additional is True:
                continue
            else:
                pruned.append(child)
                del value[key]
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [_prune(schema["items"], item, f"{path}[{i}]", pruned) for i, item in enumerate(value)]
    return value


def _is_object(schema: Obj) -> bool:
    return schema.get("type") == "object" or "properties" in schema or "additionalProperties" in schema


# -- defaulting ---------------------------------------------------------------------------


def _default(schema: Obj, value: Any) -> Any:
    if value is None and not schema.get("nullable") and "default" in schema:
        return copy.deepcopy(schema["default"])
    if isinstance(value, dict):
        properties = schema.get("properties") or {}
        for key, sub in properties.items():
            if "default" in sub and (key not in value or (value[key] is None and not sub.get("nullable"))):
                value[key] = copy.deepcopy(sub["default"])
            if key in value:
                value[key] = _default(sub, value[key])
        additional = schema.get("additionalProperties")
        if isinstance(additional, dict):
            for key in value:
                if key not in properties:
                    value[key] = _default(additional, value[key])
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [_default(schema["items"], item) for item in value]
    return value


# -- validation ---------------------------------------------------------------------------


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _type_ok(expected: str, actual: str) -> bool:
    return expected == actual or (expected == "number" and actual == "integer")


def _validate(schema: Obj, value: Any, path: str) -> list[FieldError]:
    if value is None and schema.get("nullable"):
        return []
    actual = _type_name(value)
    if schema.get("x-kubernetes-int-or-string"):
        if actual not in ("integer", "string"):
            return [errors.type_invalid(path, actual, "integer,string")]
    elif "type" in schema and not _type_ok(schema["type"], actual):
        return [errors.type_invalid(path, actual, schema["type"])]
    found: list[FieldError] = []
    if "enum" in schema and value not in schema["enum"]:
        found.append(errors.not_supported(path, value, schema["enum"]))
    if isinstance(value, str):
        found.extend(_validate_string(schema, value, path))
    elif actual in ("integer", "number"):
        found.extend(_validate_number(schema, value, path))
    elif isinstance(value, list):
        found.extend(_validate_array(schema, value, path))
    elif isinstance(value, dict):
        found.extend(_validate_object(schema, value, path))
    if schema.get("anyOf") and not any(not _validate(branch, value, path) for branch in schema["anyOf"]):
        found.append(errors.invalid(path, value, f"{path} in body must match at least one schema in anyOf"))
    return found


def _validate_string(schema: Obj, value: str, path: str) -> Iterator[FieldError]:
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        yield errors.too_long(path, schema["maxLength"])
    if "minLength" in schema and len(value) < schema["minLength"]:
        yield errors.invalid(
            path, value, f"{path} in body should be at least {schema['minLength']} chars long"
        )
    if "pattern" in schema and not _pattern_matches(schema["pattern"], value):
        yield errors.invalid(path, value, f"{path} in body should match '{schema['pattern']}'")
    fmt = schema.get("format")
    if fmt == "byte" and not _is_base64(value):
        yield errors.invalid(path, value, f"{path} in body must be of type byte: {errors.show(value)}")
    elif fmt == "date-time" and not _is_datetime(value):
        yield errors.invalid(path, value, f"{path} in body must be of type date-time: {errors.show(value)}")


def _validate_number(schema: Obj, value: float, path: str) -> Iterator[FieldError]:
    if "minimum" in schema and value < schema["minimum"]:
        yield errors.invalid(
            path, value, f"{path} in body should be greater than or equal to {schema['minimum']}"
        )
    if "maximum" in schema and value > schema["maximum"]:
        yield errors.invalid(
            path, value, f"{path} in body should be less than or equal to {schema['maximum']}"
        )
    bits = {"int32": 31, "int64": 63}.get(schema.get("format", ""))
    if bits is not None and not -(2**bits) <= value < 2**bits:
        yield errors.invalid(path, value, f"{path} in body must be of type {schema['format']}: {value}")


def _validate_array(schema: Obj, value: list[Any], path: str) -> Iterator[FieldError]:
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        yield errors.too_many(path, len(value), schema["maxItems"])
    if "minItems" in schema and len(value) < schema["minItems"]:
        yield errors.invalid(path, value, f"{path} in body should have at least {schema['minItems']} items")
    items = schema.get("items")
    if isinstance(items, dict):
        for index, item in enumerate(value):
            yield from _validate(items, item, f"{path}[{index}]")
    list_type = schema.get("x-kubernetes-list-type")
    if list_type in ("set", "map"):
        keys = schema.get("x-kubernetes-list-map-keys") or []
        seen: list[Any] = []
        for index, item in enumerate(value):
            identity = [item.get(k) for k in keys] if list_type == "map" and isinstance(item, dict) else item
            if identity in seen:
                yield errors.duplicate(f"{path}[{index}]", item)
            seen.append(identity)


def _validate_object(schema: Obj, value: Obj, path: str) -> Iterator[FieldError]:
    for key in schema.get("required") or []:
        if key not in value:
            yield errors.required(f"{path}.{key}")
    properties = schema.get("properties") or {}
    additional = schema.get("additionalProperties")
    for key, item in value.items():
        if key in properties:
            yield from _validate(properties[key], item, f"{path}.{key}")
        elif isinstance(additional, dict):
            yield from _validate(additional, item, f"{path}[{key}]")
    if "maxProperties" in schema and len(value) > schema["maxProperties"]:
        yield errors.too_many(path, len(value), schema["maxProperties"])
    if "minProperties" in schema and len(value) < schema["minProperties"]:
        yield errors.invalid(
            path, value, f"{path} in body should have at least {schema['minProperties']} properties"
        )


@functools.lru_cache(maxsize=512)
def _compiled(pattern: str) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern)
    except re.error:
        return None  # an RE2 construct Python lacks: not checked rather than misjudged


def _pattern_matches(pattern: str, value: str) -> bool:
    compiled = _compiled(pattern)
    if compiled is None:
        return True
    if pattern.endswith("$") and value.endswith("\n"):
        return False  # RE2's $ is end of text; Python's also matches before a final newline
    return compiled.search(value) is not None


def _is_base64(value: str) -> bool:
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def _is_datetime(value: str) -> bool:
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return "T" in value or "t" in value
