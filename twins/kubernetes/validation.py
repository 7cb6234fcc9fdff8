"""Validation of an object about to be stored: ``ObjectMeta``, the CRD schema or the built-in rules.

Every write ends here, after the kind's strategy prepared the object (:mod:`twins.kubernetes.strategy`):

- ``metadata`` as ``k8s.io/apimachinery/pkg/api/validation/objectmeta.go`` checks it: a name
  (RFC 1123 subdomain; a Namespace's is an RFC 1123 label), label keys and values,
  annotation keys, all with the server's own wording;
- custom resources (the ESO kinds): the ``openAPIV3Schema`` of the requested version from
  the CRD files (:mod:`twins.kubernetes.schema`); unknown fields are pruned and, with
  ``?fieldValidation=Strict``, refused (the default ``Warn`` sends a ``Warning`` header);
- built-ins, a few rules of ``pkg/apis/core/validation`` and ``pkg/apis/apps/validation``
  that clients meet in practice: Secret keys, base64 values, size, type and ``immutable``;
  a workload's ``spec.selector`` (required, matching the template's labels, immutable) and
  its containers. Everything else about built-ins is accepted as sent.

Failures raise :class:`~twins.kubernetes.errors.ApiError`: 422 ``Invalid`` with every field
error, or 400 where the real server fails while decoding (a non-string label value, bad
base64 in a Secret, an unknown field under ``Strict``).
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
from dataclasses import dataclass, field
from typing import Any

from twins.kubernetes import errors
from twins.kubernetes.errors import FieldError
from twins.kubernetes.kinds import Obj, ResourceType
from twins.kubernetes.schema import CrdSchemas, admit
from twins.kubernetes.selectors import Requirement, labels_match

logger = logging.getLogger(__name__)

DNS1123_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS1123_SUBDOMAIN = rf"{DNS1123_LABEL}(\.{DNS1123_LABEL})*"
QUALIFIED_NAME = r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
LABEL_VALUE = rf"({QUALIFIED_NAME})?"
CONFIG_KEY = r"[-._a-zA-Z0-9]+"
SUBDOMAIN_MESSAGE = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
    "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
    f"validation is '{DNS1123_SUBDOMAIN}')"
)
LABEL_MESSAGE = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must "
    f"start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for "
    f"validation is '{DNS1123_LABEL}')"
)
LABEL_VALUE_MESSAGE = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and "
    "must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', "
    f"regex used for validation is '{LABEL_VALUE}')"
)
QUALIFIED_NAME_MESSAGE = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
    f"'{QUALIFIED_NAME}')"
)
CONFIG_KEY_MESSAGE = (
    "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or "
    f"'KEY_NAME',  or 'key-name', regex used for validation is '{CONFIG_KEY}')"
)
MAX_SECRET_BYTES = 1024 * 1024
WORKLOAD_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet"})


@dataclass
class Admitted:
    """The object to store (pruned and defaulted for custom resources) and the warnings to send."""

    obj: Obj
    warnings: list[str] = field(default_factory=list)


class Validator:
    """Validates objects of every served kind; ``crds`` holds the ESO schemas (``None``: not checked)."""

    def __init__(self, crds: CrdSchemas | None) -> None:
        self.crds = crds

    def selectable_fields(self, resource_type: ResourceType, version: str) -> tuple[str, ...]:
        """The CRD's ``selectableFields`` for ``?fieldSelector=`` (none without the CRD)."""
        if self.crds is None or not resource_type.custom:
            return ()
        found = self.crds.get(resource_type.group, resource_type.plural, version)
        return found.selectable_fields if found is not None else ()

    def admit(
        self,
        resource_type: ResourceType,
        version: str,
        obj: Obj,
        old: Obj | None = None,
        *,
        field_validation: str = "Warn",
    ) -> Admitted:
        """Check ``obj`` (``old`` is the stored object on an update); raise ``ApiError`` if refused."""
        found = _metadata_errors(resource_type, obj)
        admitted = Admitted(obj)
        if resource_type.custom:
            admitted, schema_errors = self._admit_custom(resource_type, version, obj, field_validation)
            found.extend(schema_errors)
        elif resource_type.kind == "Secret":
            found.extend(_secret_errors(obj, old))
        elif resource_type.kind in WORKLOAD_KINDS:
            found.extend(_workload_errors(resource_type.kind, obj, old))
        if found:
            raise errors.invalid_object(resource_type, obj.get("metadata", {}).get("name", ""), found)
        return admitted

    def _admit_custom(
        self, resource_type: ResourceType, version: str, obj: Obj, field_validation: str
    ) -> tuple[Admitted, list[FieldError]]:
        warnings = []
        if version in resource_type.deprecated_versions:
            warnings.append(f"{resource_type.group}/{version} {resource_type.kind} is deprecated")
        crd = (
            self.crds.get(resource_type.group, resource_type.plural, version)
            if self.crds is not None
            else None
        )
        if crd is None:
            return Admitted(obj, warnings), []
        outcome = admit(crd.schema, obj)
        unknown = [f'unknown field "{path}"' for path in outcome.pruned]
        if unknown and field_validation == "Strict":
            raise errors.bad_request("strict decoding error: " + ", ".join(unknown))
        if field_validation != "Ignore":
            warnings.extend(unknown)
        return Admitted(outcome.obj, warnings), outcome.errors


# -- ObjectMeta -----------------------------------------------------------------------------


def _metadata_errors(resource_type: ResourceType, obj: Obj) -> list[FieldError]:
    metadata = obj.get("metadata")
    if not isinstance(metadata, dict):
        return [errors.required("metadata")]
    found: list[FieldError] = []
    name = metadata.get("name")
    if not name:
        found.append(errors.required("metadata.name", "name or generateName is required"))
    elif not isinstance(name, str):
        raise errors.bad_request("json: cannot unmarshal metadata.name: the name must be a string")
    elif resource_type.kind == "Namespace":
        found.extend(_dns_label("metadata.name", name))
    else:
        found.extend(_dns_subdomain("metadata.name", name))
    for section in ("labels", "annotations"):
        entries = metadata.get(section)
        if entries is None:
            continue
        if not isinstance(entries, dict) or not all(isinstance(v, str) for v in entries.values()):
            raise errors.bad_request(
                f"json: cannot unmarshal metadata.{section}: "
                f"ObjectMeta.metadata.{section} must map strings to strings"
            )
        for key, value in entries.items():
            found.extend(_qualified_name(f"metadata.{section}", key))
            if section == "labels" and (len(value) > 63 or not re.fullmatch(LABEL_VALUE, value)):
                detail = "must be no more than 63 characters" if len(value) > 63 else LABEL_VALUE_MESSAGE
                found.append(errors.invalid("metadata.labels", value, detail))
    return found


def _dns_subdomain(path: str, value: str) -> list[FieldError]:
    if len(value) > 253:
        return [errors.invalid(path, value, "must be no more than 253 characters")]
    if not re.fullmatch(DNS1123_SUBDOMAIN, value):
        return [errors.invalid(path, value, SUBDOMAIN_MESSAGE)]
    return []


def _dns_label(path: str, value: str) -> list[FieldError]:
    if len(value) > 63:
        return [errors.invalid(path, value, "must be no more than 63 characters")]
    if not re.fullmatch(DNS1123_LABEL, value):
        return [errors.invalid(path, value, LABEL_MESSAGE)]
    return []


def _qualified_name(path: str, key: str) -> list[FieldError]:
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or _dns_subdomain(path, prefix)):
        return [errors.invalid(path, key, "prefix part " + SUBDOMAIN_MESSAGE)]
    if not name or len(name) > 63 or not re.fullmatch(QUALIFIED_NAME, name):
        return [errors.invalid(path, key, QUALIFIED_NAME_MESSAGE)]
    return []


# -- Secrets ----------------------------------------------------------------------------------


def _secret_errors(obj: Obj, old: Obj | None) -> list[FieldError]:
    found: list[FieldError] = []
    data = obj.get("data") or {}
    if not isinstance(data, dict):
        raise errors.bad_request("json: cannot unmarshal data: Secret.data must be an object")
    size = 0
    for key, value in data.items():
        if not re.fullmatch(CONFIG_KEY, key) or len(key) > 253:
            found.append(errors.invalid(f"data[{key}]", key, CONFIG_KEY_MESSAGE))
        size += len(_decoded(key, value))
    if size > MAX_SECRET_BYTES:
        found.append(
            errors.FieldError(
                "FieldValueTooLong", "data", f"Too long: must have at most {MAX_SECRET_BYTES} bytes"
            )
        )
    if old is not None:
        if obj.get("type") != old.get("type"):
            found.append(errors.invalid("type", obj.get("type"), "field is immutable"))
        if old.get("immutable"):
            if obj.get("data") != old.get("data"):
                found.append(errors.forbidden_field("data", "field is immutable when `immutable` is set"))
            if not obj.get("immutable"):
                found.append(
                    errors.forbidden_field("immutable", "field is immutable when `immutable` is set")
                )
    return found


def _decoded(key: str, value: Any) -> bytes:
    if not isinstance(value, str):
        raise errors.bad_request(
            f"json: cannot unmarshal data[{key}]: Secret.data values must be base64 strings"
        )
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise errors.bad_request(f"illegal base64 data in data[{key}]: {exc}") from exc


# -- Workloads ----------------------------------------------------------------------------


def _workload_errors(kind: str, obj: Obj, old: Obj | None) -> list[FieldError]:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [errors.required("spec.selector"), errors.required("spec.template.spec.containers")]
    found: list[FieldError] = []
    selector = spec.get("selector")
    template = spec.get("template") or {}
    labels = (template.get("metadata") or {}).get("labels") or {}
    if not isinstance(selector, dict):
        found.append(errors.required("spec.selector"))
    elif not selector.get("matchLabels") and not selector.get("matchExpressions"):
        found.append(
            errors.invalid("spec.selector", selector, f"empty selector is invalid for {kind.lower()}")
        )
    elif not labels_match(selector_requirements(selector), {"metadata": {"labels": labels}}):
        found.append(
            errors.invalid(
                "spec.template.metadata.labels", labels, "`selector` does not match template `labels`"
            )
        )
    if old is not None and selector != (old.get("spec") or {}).get("selector"):
        found.append(errors.invalid("spec.selector", selector, "field is immutable"))
    containers = (template.get("spec") or {}).get("containers")
    if not containers:
        found.append(errors.required("spec.template.spec.containers"))
    else:
        for index, container in enumerate(containers):
            if not isinstance(container, dict) or not container.get("name"):
                found.append(errors.required(f"spec.template.spec.containers[{index}].name"))
            elif not container.get("image"):
                found.append(errors.required(f"spec.template.spec.containers[{index}].image"))
    return found


def selector_requirements(selector: Obj) -> list[Requirement]:
    """A ``LabelSelector`` (``matchLabels`` + ``matchExpressions``) as label requirements."""
    requirements = [Requirement(k, "=", (v,)) for k, v in (selector.get("matchLabels") or {}).items()]
    operators = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!exists"}
    for expression in selector.get("matchExpressions") or []:
        operator = operators.get(expression.get("operator", ""), "in")
        requirements.append(
            Requirement(expression.get("key", ""), operator, tuple(expression.get("values") or ()))
        )
    return requirements
