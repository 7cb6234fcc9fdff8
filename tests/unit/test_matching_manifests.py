"""The matching fixtures checked against ESO's CRD schemas, and matching run on YAML manifests.

``jsonschema`` is not a dependency, so :func:`schema_errors` checks the subset of OpenAPI v3
that ESO's CRDs use (type, properties and unknown fields, required, enum, items,
additionalProperties, string lengths and patterns, property and item counts, int-or-string).
CEL rules (``x-kubernetes-validations``) and ESO's admission webhook are not checked.

The CRDs are the unmodified ESO v2.9.0 copies in ``../shared/eso-crds`` next to the checkout
(``AKV_ROTATOR_ESO_CRDS`` overrides the folder); without them the schema tests skip.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

import pytest
import yaml

from rotation.propagation.matching import match
from tests.unit.test_matching import MALFORMED, valid_objects
from twins.kubernetes import eso_crd_dir

CRD_DIR = eso_crd_dir()
CRD_FILES = {
    "ExternalSecret": "external-secrets.io_externalsecrets.yaml",
    "ClusterExternalSecret": "external-secrets.io_clusterexternalsecrets.yaml",
    "SecretStore": "external-secrets.io_secretstores.yaml",
    "ClusterSecretStore": "external-secrets.io_clustersecretstores.yaml",
}
_TYPES: dict[str, tuple[type, ...]] = {"object": (dict,), "array": (list,), "string": (str,),
                                       "boolean": (bool,), "integer": (int,), "number": (int, float)}


@cache
def crd_schema(kind: str, version: str) -> dict[str, Any]:
    path = CRD_DIR / CRD_FILES[kind] if CRD_DIR is not None else None
    if path is None or not path.exists():
        pytest.skip(f"ESO CRDs not found at {CRD_DIR} (set AKV_ROTATOR_ESO_CRDS to the folder holding "
                    f"{CRD_FILES[kind]})")
    crd = yaml.safe_load(path.read_text())
    for entry in crd["spec"]["versions"]:
        if entry["name"] == version:
            schema: dict[str, Any] = entry["schema"]["openAPIV3Schema"]
            return schema
    raise AssertionError(f"{path.name} has no version {version}")


def schema_errors(value: Any, schema: dict[str, Any], path: str = "") -> list[str]:
    """Where ``value`` breaks ``schema`` (the OpenAPI subset ESO's CRDs use); empty if nowhere."""
    here = path or "<root>"
    if value is None and schema.get("nullable"):
        return []
    if schema.get("x-kubernetes-int-or-string"):
        ok = isinstance(value, int | str) and not isinstance(value, bool)
        return [] if ok else [f"{here}: not an int or string"]
    kind = schema.get("type")
    wrong_type = kind is not None and not isinstance(value, _TYPES[kind])
    if wrong_type or (kind not in (None, "boolean") and isinstance(value, bool)):
        return [f"{here}: {type(value).__name__} is not {kind}"]
    errors: list[str] = []
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{here}: {value!r} is not one of {schema['enum']}")
    if isinstance(value, str):
        if not schema.get("minLength", 0) <= len(value) <= schema.get("maxLength", len(value)):
            errors.append(f"{here}: length {len(value)} out of bounds")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            errors.append(f"{here}: {value!r} does not match {schema['pattern']}")
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            errors.append(f"{here}: fewer than {schema['minItems']} items")
        for index, entry in enumerate(value):
            errors += schema_errors(entry, schema.get("items", {}), f"{path}[{index}]")
    if isinstance(value, dict):
        errors += _object_errors(value, schema, path)
    return errors


def _object_errors(value: dict[str, Any], schema: dict[str, Any], path: str) -> list[str]:
    here = path or "<root>"
    properties = schema.get("properties")
    extra = schema.get("additionalProperties")
    errors = [f"{here}: {name} is required" for name in schema.get("required", []) if name not in value]
    if not schema.get("minProperties", 0) <= len(value) <= schema.get("maxProperties", len(value)):
        errors.append(f"{here}: {len(value)} properties out of bounds")
    for name, entry in value.items():
        where = f"{path}.{name}" if path else name
        if properties is not None and name in properties:
            errors += schema_errors(entry, properties[name], where)
        elif isinstance(extra, dict):
            errors += schema_errors(entry, extra, where)
        elif properties is not None and not schema.get("x-kubernetes-preserve-unknown-fields"):
            errors.append(f"{where}: unknown field (the API server would drop it)")
    return errors


def object_errors(obj: dict[str, Any]) -> list[str]:
    """Schema errors of one ESO object, against its kind and version's CRD."""
    version = obj["apiVersion"].rpartition("/")[2]
    errors = schema_errors(obj, crd_schema(obj["kind"], version))
    if not obj.get("metadata", {}).get("name"):
        errors.append("metadata.name is missing")
    return errors


def _eso_objects() -> list[dict[str, Any]]:
    return [obj for obj in valid_objects() if obj["kind"] in CRD_FILES]


def _id(obj: dict[str, Any]) -> str:
    meta = obj["metadata"]
    return f"{obj['kind']}/{meta.get('namespace', '-')}/{meta['name']}"


@pytest.mark.parametrize("obj", _eso_objects(), ids=_id)
def test_fixture_is_accepted_by_the_crd(obj: dict[str, Any]) -> None:
    assert object_errors(obj) == []


@pytest.mark.parametrize(("change", "message"), [
    (lambda o: o["spec"]["data"][0]["remoteRef"].update(keyy="db"), "remoteRef.keyy: unknown field"),
    (lambda o: o["spec"].update(refreshPolicy="Sometimes"), "is not one of"),
    (lambda o: o["spec"]["secretStoreRef"].update(kind="Vault"), "'Vault' is not one of"),
    (lambda o: o["spec"]["data"][0].pop("secretKey"), "secretKey is required"),
    (lambda o: o["spec"]["data"][0]["remoteRef"].update(key=7), "int is not string"),
    (lambda o: o["spec"]["secretStoreRef"].update(name="Not_A_Name"), "does not match"),
])
def test_the_schema_check_is_not_vacuous(change: Any, message: str) -> None:
    obj = yaml.safe_load(yaml.safe_dump(next(o for o in _eso_objects() if o["metadata"]["name"] == "a1")))
    change(obj)
    assert any(message in error for error in object_errors(obj)), object_errors(obj)


def test_malformed_fixtures_with_wrong_types_are_refused_by_the_crd() -> None:
    refused = {"data not a list", "key not a string", "remoteRef missing", "item not an object",
               "tags not strings", "refreshInterval a number", "store kind unknown",
               "store without vaultUrl, matching key", "store without vaultUrl, other key"}
    for case in MALFORMED:
        if case.id in refused:
            assert any(object_errors(obj) for obj in case.objects if "apiVersion" in obj), case.id


# The reference's example manifests (docs: ESO and Reloader notes, section 8), a CES and its child
# as ESO writes it, and a second namespace whose SecretStore has the same name on another vault.
MANIFESTS = """
apiVersion: external-secrets.io/v1
kind: ClusterSecretStore
metadata:
  name: kv-payments-prod
spec:
  conditions:
    - namespaceSelector:
        matchLabels:
          team: payments
  provider:
    azurekv:
      vaultUrl: "https://kv-payments-prod.vault.azure.net"
      authType: WorkloadIdentity
      tenantId: "11111111-2222-3333-4444-555555555555"
      serviceAccountRef:
        name: eso-kv-reader
        namespace: external-secrets
---
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata:
  name: payments-db
  namespace: payments
  annotations:
    external-secrets.io/force-sync: "rot-2026-08-12T10-00-00Z"
spec:
  refreshPolicy: OnChange
  secretStoreRef:
    kind: ClusterSecretStore
    name: kv-payments-prod
  target:
    name: payments-db
    template:
      metadata:
        annotations:
          reloader.stakater.com/match: "true"
  data:
    - secretKey: password
      remoteRef:
        key: secret/db-password
    - secretKey: password-updated-at
      remoteRef:
        key: db-password
        metadataPolicy: Fetch
        property: attribute.updated
  dataFrom:
    - extract:
        key: db-connection-json
    - find:
        name:
          regexp: "^db-"
        tags:
          rotation: managed
---
apiVersion: external-secrets.io/v1
kind: SecretStore
metadata:
  name: kv
  namespace: payments
spec:
  provider:
    azurekv:
      vaultUrl: "https://KV-PAYMENTS-PROD.vault.azure.net/"
---
apiVersion: external-secrets.io/v1
kind: SecretStore
metadata:
  name: kv
  namespace: web
spec:
  provider:
    azurekv:
      vaultUrl: "https://kv-web.vault.azure.net"
---
apiVersion: external-secrets.io/v1
kind: ClusterExternalSecret
metadata:
  name: db-everywhere
spec:
  namespaceSelectors:
    - matchLabels:
        db-client: "true"
  externalSecretSpec:
    refreshInterval: 10m
    secretStoreRef:
      name: kv
    data:
      - secretKey: password
        remoteRef:
          key: db-password
status:
  provisionedNamespaces: [payments, web]
---
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata:
  name: db-everywhere
  namespace: web
  ownerReferences:
    - apiVersion: external-secrets.io/v1
      kind: ClusterExternalSecret
      name: db-everywhere
      uid: 0b6f1c3e-2a49-4d8e-9f59-6c9a1f0e7d21
      controller: true
      blockOwnerDeletion: true
spec:
  refreshInterval: 10m
  secretStoreRef:
    name: kv
  data:
    - secretKey: password
      remoteRef:
        key: db-password
---
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata:
  name: db-everywhere
  namespace: payments
  ownerReferences:
    - apiVersion: external-secrets.io/v1
      kind: ClusterExternalSecret
      name: db-everywhere
      uid: 0b6f1c3e-2a49-4d8e-9f59-6c9a1f0e7d21
      controller: true
spec:
  refreshInterval: 10m
  secretStoreRef:
    name: kv
  data:
    - secretKey: password
      remoteRef:
        key: db-password
"""
PAYMENTS_VAULT = "https://kv-payments-prod.vault.azure.net"
NAMESPACES = """
apiVersion: v1
kind: List
items:
  - {apiVersion: v1, kind: Namespace, metadata: {name: payments, labels: {team: payments}}}
  - {apiVersion: v1, kind: Namespace, metadata: {name: web, labels: {team: web}}}
"""


def manifests(extra: str = "") -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(MANIFESTS + ("---" + extra if extra else "")) if doc]


@pytest.mark.parametrize("obj", [o for o in manifests() if o["kind"] in CRD_FILES],
                         ids=lambda o: f"{o['kind']}/{o['metadata']['name']}")
def test_manifests_are_accepted_by_the_crd(obj: dict[str, Any]) -> None:
    assert object_errors(obj) == []


def verdicts(secret: str, tags: dict[str, str], extra: str = "") -> dict[str, tuple[str, str]]:
    return {f"{v.namespace}/{v.kind}/{v.name}": (v.action, v.reason)
            for v in match(PAYMENTS_VAULT, secret, tags, manifests(extra))}


def test_rotating_the_password_refreshes_the_reference_example_and_the_ces() -> None:
    found = verdicts("db-password", {"rotation": "managed"}, NAMESPACES)
    assert found["payments/ExternalSecret/payments-db"] == (
        "annotate", "annotate: spec.data[0].remoteRef.key 'secret/db-password' reads it through "
                    "ClusterSecretStore/kv-payments-prod")
    assert found["/ClusterExternalSecret/db-everywhere"][0] == "annotate"
    assert "through payments/SecretStore/kv" in found["/ClusterExternalSecret/db-everywhere"][1]
    assert found["payments/ExternalSecret/db-everywhere"][0] == "annotate-parent"
    assert found["web/ExternalSecret/db-everywhere"] == (
        "skip", "skip: its store web/SecretStore/kv points at another vault ('https://kv-web.vault.azure.net')")


def test_the_example_picks_up_other_secrets_through_extract_and_find() -> None:
    assert verdicts("db-connection-json", {}, NAMESPACES)["payments/ExternalSecret/payments-db"][1] == (
        "annotate: spec.dataFrom[0].extract.key 'db-connection-json' reads it through "
        "ClusterSecretStore/kv-payments-prod")
    found = verdicts("db-replica", {"rotation": "managed", "owner": "dba"}, NAMESPACES)
    assert found["payments/ExternalSecret/payments-db"][1].startswith(
        "annotate: spec.dataFrom[1].find selects it by name.regexp '^db-' and 1 tag(s)")
    assert verdicts("db-replica", {}, NAMESPACES)["payments/ExternalSecret/payments-db"][0] == "skip"
    api_key = verdicts("api-key", {"rotation": "managed"}, NAMESPACES)
    assert api_key["payments/ExternalSecret/payments-db"][0] == "skip"


def test_store_conditions_need_the_namespace_labels() -> None:
    unknown = verdicts("db-password", {})["payments/ExternalSecret/payments-db"]
    assert unknown[0] == "annotate"
    assert "spec.conditions not evaluated: spec.conditions[0].namespaceSelector needs Namespace " \
           "'payments''s labels; assumed allowed" in unknown[1]
    relabelled = NAMESPACES.replace("labels: {team: payments}", "labels: {team: billing}")
    assert verdicts("db-password", {}, relabelled)["payments/ExternalSecret/payments-db"] == (
        "skip",
        "skip: ClusterSecretStore/kv-payments-prod does not allow namespace 'payments' (spec.conditions)")


def test_the_ces_namespaces_come_from_its_status_and_children() -> None:
    docs = [doc for doc in manifests() if doc["kind"] != "ExternalSecret"]
    docs[-1] = {**docs[-1], "status": {}}  # no provisioned namespaces, no children, no Namespaces
    found = {v.name: v for v in match(PAYMENTS_VAULT, "db-password", {}, docs)}
    assert found["db-everywhere"].action == "report"
    reason = found["db-everywhere"].reason
    assert "SecretStore 'kv' resolves in each target namespace and none is known" in reason
