"""The three PATCH bodies the API server accepts besides server-side apply.

- ``application/merge-patch+json``: RFC 7386 (https://www.rfc-editor.org/rfc/rfc7386): objects
  merge recursively, ``null`` deletes a key, anything else (lists included) replaces.
- ``application/strategic-merge-patch+json``: built-in kinds only (custom resources answer
  415). Like a merge patch, except that lists whose Go field carries ``patchStrategy:"merge"``
  merge by their ``patchMergeKey`` (containers by ``name``, volumeMounts by ``mountPath``...),
  ``metadata.finalizers`` merges as a set, and the ``$patch: delete|replace`` and
  ``$deleteFromPrimitiveList/<field>`` directives are honoured; ``$setElementOrder/`` lists are
  accepted and ignored (order is then the original's, new items appended). Only the merge
  keys of the kinds the twin serves are known: see :data:`MERGE_KEYS`. ``$retainKeys`` is
  refused with a 400 rather than misapplied.
- ``application/json-patch+json``: RFC 6902 (https://www.rfc-editor.org/rfc/rfc6902) with
  ``add``, ``remove``, ``replace``, ``move``, ``copy``, ``test``.

See https://kubernetes.io/docs/tasks/manage-kubernetes-objects/update-api-object-kubectl-patch/.
Every function returns a new object and leaves its inputs untouched.
"""

from __future__ import annotations

import copy
from typing import Any

from twins.kubernetes import errors

MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"

MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "ports": "containerPort",
    "imagePullSecrets": "name",
    "hostAliases": "ip",
    "ownerReferences": "uid",
    "conditions": "type",
    "topologySpreadConstraints": "topologyKey",
    "resourceClaims": "name",
}
"""``patchMergeKey`` of the list fields with ``patchStrategy:"merge"`` in the served kinds,
by field name (``k8s.io/api/core/v1/types.go``, ``apps/v1/types.go``, ``meta/v1/types.go``)."""

MERGED_PRIMITIVE_LISTS = frozenset({"finalizers"})
"""Lists of scalars with ``patchStrategy:"merge"``: merged as a set."""


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 ``MergePatch(target, patch)``."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    """A strategic merge patch of an object (see the module docstring for what is supported)."""
    if not isinstance(patch, dict):
        raise errors.bad_request("a strategic merge patch must be a JSON object")
    return _strategic_map(target if isinstance(target, dict) else {}, patch)


def _strategic_map(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    directive = patch.get("$patch")
    if directive == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if directive == "delete":
        return {}
    if directive is not None:
        raise errors.bad_request(f"unknown patch type: {directive}")
    if "$retainKeys" in patch:
        raise errors.bad_request("the twin does not support the $retainKeys directive")
    result = copy.deepcopy(target)
    for key, value in patch.items():
        if key.startswith("$setElementOrder/"):
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            remove = set(value or [])
            result[field] = [v for v in result.get(field) or [] if v not in remove]
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            current = result.get(key)
            result[key] = _strategic_map(current if isinstance(current, dict) else {}, value)
        elif isinstance(value, list):
            result[key] = _strategic_list(key, result.get(key), value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def _strategic_list(field: str, current: Any, patch: list[Any]) -> list[Any]:
    original = current if isinstance(current, list) else []
    if field in MERGED_PRIMITIVE_LISTS:
        merged = list(original)
        merged.extend(v for v in patch if v not in merged)
        return merged
    merge_key = MERGE_KEYS.get(field)
    if merge_key is None or not all(isinstance(item, dict) for item in patch):
        return copy.deepcopy(patch)
    if any(isinstance(item, dict) and item.get("$patch") == "replace" for item in patch):
        return [copy.deepcopy(i) for i in patch if not (isinstance(i, dict) and "$patch" in i)]
    merged = [copy.deepcopy(item) for item in original]
    for item in patch:
        key = item.get(merge_key)
        index = next(
            (
                i
                for i, existing in enumerate(merged)
                if isinstance(existing, dict) and existing.get(merge_key) == key
            ),
            None,
        )
        if item.get("$patch") == "delete":
            if index is not None:
                del merged[index]
        elif index is None:
            merged.append(_strategic_map({}, item))
        else:
            merged[index] = _strategic_map(merged[index], item)
    return merged


def json_patch(target: Any, operations: Any) -> Any:
    """RFC 6902: apply ``operations`` in order; a failing one is a 422 and nothing is applied."""
    if not isinstance(operations, list):
        raise errors.bad_request("a JSON patch must be a JSON array of operations")
    document = copy.deepcopy(target)
    for number, operation in enumerate(operations):
        if not isinstance(operation, dict) or "op" not in operation or "path" not in operation:
            raise _patch_failed(f"operation {number} needs 'op' and 'path'")
        document = _apply_operation(document, operation)
    return document


def _apply_operation(document: Any, operation: dict[str, Any]) -> Any:
    op, path = operation["op"], _pointer(operation["path"])
    if op == "add":
        return _add(document, path, copy.deepcopy(_value(operation)))
    if op == "remove":
        return _remove(document, path)[0]
    if op == "replace":
        return _add(_remove(document, path)[0], path, copy.deepcopy(_value(operation)))
    if op in ("move", "copy"):
        source = _pointer(operation.get("from", ""))
        value = copy.deepcopy(_get(document, source))
        if op == "move":
            document = _remove(document, source)[0]
        return _add(document, path, value)
    if op == "test":
        if _get(document, path) != _value(operation):
            raise _patch_failed(f"testing value {operation['path']} failed")
        return document
    raise _patch_failed(f"unexpected kind of operation: {op!r}")


def _value(operation: dict[str, Any]) -> Any:
    if "value" not in operation:
        raise _patch_failed(f"{operation['op']} operation needs a 'value'")
    return operation["value"]


def _pointer(text: Any) -> list[str]:
    if not isinstance(text, str) or (text and not text.startswith("/")):
        raise _patch_failed(f"invalid JSON pointer: {text!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in text.split("/")[1:]] if text else []


def _get(document: Any, path: list[str]) -> Any:
    for token in path:
        document = _child(document, token)
    return document


def _child(node: Any, token: str) -> Any:
    if isinstance(node, dict) and token in node:
        return node[token]
    if isinstance(node, list) and token.isdigit() and int(token) < len(node):
        return node[int(token)]
    raise _patch_failed(f"path component {token!r} does not exist")


def _add(document: Any, path: list[str], value: Any) -> Any:
    if not path:
        return value
    parent, last = _get(document, path[:-1]), path[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        index = len(parent) if last == "-" else int(last) if last.isdigit() else -1
        if not 0 <= index <= len(parent):
            raise _patch_failed(f"index {last!r} is out of bounds")
        parent.insert(index, value)
    else:
        raise _patch_failed(f"cannot add to a {type(parent).__name__}")
    return document


def _remove(document: Any, path: list[str]) -> tuple[Any, Any]:
    if not path:
        raise _patch_failed("cannot remove the whole document")
    parent, last = _get(document, path[:-1]), path[-1]
    removed = _child(parent, last)
    if isinstance(parent, dict):
        del parent[last]
    else:
        del parent[int(last)]
    return document, removed


def _patch_failed(why: str) -> errors.ApiError:
    return errors.ApiError(
        422, "Invalid", f"the server rejected our request due to an error in our request: {why}"
    )
