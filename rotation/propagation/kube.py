"""Reading the JSON of Kubernetes objects that anyone with ``kubectl apply`` may have written.

Nothing here trusts a shape: every field is checked for its type when read, and a wrong one
raises :class:`Malformed` naming the field path, which the caller turns into a verdict (a
cluster's API server would have refused most such objects, but YAML files have no such guard).
JSON ``null`` reads as absent, as the API server treats it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, cast

GROUP: Final = "external-secrets.io"
SUPPORTED_VERSIONS = ("v1", "v1beta1")  # v1 from ESO 0.16; v1beta1 where a cluster still serves it
ES_KIND: Final = "ExternalSecret"
CES_KIND: Final = "ClusterExternalSecret"
SS_KIND: Final = "SecretStore"
CSS_KIND: Final = "ClusterSecretStore"
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"  # set on every Namespace by the API server

JsonMap = Mapping[str, object]


class Malformed(ValueError):
    """A field of an object has the wrong type or a value no reader could use."""

    def __init__(self, path: str, what: str) -> None:
        super().__init__(f"{path} {what}")
        self.path = path


def quote(value: object, limit: int = 80) -> str:
    """``value`` quoted for a message and cut short: object fields are anyone's input.

    The cut is made on the quoted form, so escapes of unprintable characters cannot make a
    message long. Containers show only their type: their ``repr`` could nest arbitrarily deep.
    """
    if isinstance(value, str | int | float | bool) or value is None:
        quoted = repr(value)
    else:
        quoted = f"<{type(value).__name__}>"
    return quoted if len(quoted) <= limit + 2 else quoted[:limit] + "…"


def field_path(path: str, key: str) -> str:
    """``path.key``, or ``key`` at the top of an object (``path`` empty)."""
    return f"{path}.{key}" if path else key


def as_map(value: object) -> JsonMap | None:
    """``value`` as a JSON object, or None if it is something else."""
    return cast(JsonMap, value) if isinstance(value, Mapping) else None


def opt_map(obj: JsonMap, key: str, path: str) -> JsonMap | None:
    """``obj[key]`` when it is an object; None when absent or null; :class:`Malformed` otherwise."""
    value = obj.get(key)
    if value is None:
        return None
    found = as_map(value)
    if found is None:
        raise Malformed(field_path(path, key), "is not an object")
    return found


def opt_list(obj: JsonMap, key: str, path: str) -> list[object]:
    """``obj[key]`` when it is a list; empty when absent or null; :class:`Malformed` otherwise."""
    value = obj.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise Malformed(field_path(path, key), "is not a list")
    return value


def opt_str(obj: JsonMap, key: str, path: str) -> str | None:
    """``obj[key]`` when it is a string; None when absent or null; :class:`Malformed` otherwise."""
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise Malformed(field_path(path, key), f"is not a string ({quote(value, 40)})")
    return value


def str_map(obj: JsonMap, key: str, path: str) -> dict[str, str]:
    """``obj[key]`` as a string-to-string map (labels, tags); empty when absent or null."""
    found = opt_map(obj, key, path)
    if found is None:
        return {}
    result: dict[str, str] = {}
    for name, value in found.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise Malformed(field_path(path, key),
                            f"has a key or value that is not a string ({quote(name, 40)})")
        result[name] = value
    return result


def group_version(obj: JsonMap) -> tuple[str, str] | None:
    """``(group, version)`` of ``apiVersion``; None when it is missing or not a string."""
    api_version = obj.get("apiVersion")
    if not isinstance(api_version, str):
        return None
    group, _, version = api_version.rpartition("/")
    return group, version
