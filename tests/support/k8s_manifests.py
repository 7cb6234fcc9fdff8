"""Kubernetes manifests read as data, for the checks of ``infra/k8s`` (tests/unit/test_k8s_manifests.py).

- :func:`load_documents`: every YAML document of a folder, with where it came from;
- :class:`CrdSchemas`: the ESO CRDs' ``openAPIV3Schema`` per group, kind and version, turned into
  JSON Schema that refuses unknown fields as ``kubectl apply`` does by default (server-side
  field validation ``Strict``): ``additionalProperties: false`` on every object schema that
  lists ``properties`` and neither ``additionalProperties`` nor
  ``x-kubernetes-preserve-unknown-fields``, and ``nullable`` read as "or null". CEL rules
  (``x-kubernetes-validations``), ``format`` and ESO's admission webhook are not checked;
- :func:`cluster_calls`: the API requests the rotator's own :class:`~rotation.propagation.cluster.Cluster`
  sends, caught below the official client (its urllib3 pool) and turned into RBAC attributes
  the way the API server does (``twins.kubernetes.routes.request_info``), each marked
  required or optional: optional when the call is refused (403) and the method still succeeds;
- :func:`role_grants`: a Role's or ClusterRole's rules as ``(verb, apiGroup, resource)`` triples.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import urllib3
import yaml

from twins.kubernetes.routes import request_info

Obj = dict[str, Any]


# -- documents ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Document:
    path: Path
    index: int  # position in its file, from 0
    obj: Obj

    @property
    def kind(self) -> str:
        return str(self.obj.get("kind"))

    @property
    def group(self) -> str:
        return str(self.obj.get("apiVersion", "")).rpartition("/")[0]

    @property
    def version(self) -> str:
        return str(self.obj.get("apiVersion", "")).rpartition("/")[2]

    @property
    def name(self) -> str:
        meta = self.obj.get("metadata")
        return str(meta.get("name", "")) if isinstance(meta, dict) else ""

    def ident(self, root: Path) -> str:
        return f"{self.path.relative_to(root)}#{self.index}:{self.kind}/{self.name}"


def yaml_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())


def load_documents(root: Path) -> list[Document]:
    """Every non-empty YAML document under ``root`` (``yaml.YAMLError`` if a file does not parse)."""
    found: list[Document] = []
    for path in yaml_files(root):
        for index, obj in enumerate(yaml.safe_load_all(path.read_text())):
            if obj is not None:
                found.append(Document(path, index, obj))
    return found


# -- ESO CRDs as JSON Schema ---------------------------------------------------------------------

@dataclass(frozen=True)
class CrdVersion:
    served: bool
    schema: Obj  # strict JSON Schema (see the module docstring)


class CrdSchemas:
    """The CRDs of a folder, by ``(group, kind)`` and version name."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.versions: dict[tuple[str, str], dict[str, CrdVersion]] = {}
        for path in yaml_files(directory):
            for crd in yaml.safe_load_all(path.read_text()):
                if not isinstance(crd, dict) or crd.get("kind") != "CustomResourceDefinition":
                    continue
                key = (crd["spec"]["group"], crd["spec"]["names"]["kind"])
                self.versions[key] = {
                    entry["name"]: CrdVersion(bool(entry.get("served")),
                                              strict_schema(entry["schema"]["openAPIV3Schema"]))
                    for entry in crd["spec"]["versions"]
                }

    def groups(self) -> set[str]:
        return {group for group, _ in self.versions}

    def errors(self, obj: Mapping[str, Any]) -> list[str]:
        """Why the API server would refuse ``obj`` by its CRD schema; empty if it would not."""
        import jsonschema  # a dev dependency (through kubernetes-validate)

        group, _, version = str(obj.get("apiVersion", "")).rpartition("/")
        versions = self.versions.get((group, str(obj.get("kind"))))
        if versions is None:
            return [f"no CRD for {obj.get('kind')} in {group} under {self.directory}"]
        entry = versions.get(version)
        if entry is None or not entry.served:
            served = sorted(name for name, v in versions.items() if v.served)
            return [f"{obj.get('apiVersion')} is not served (served: {served})"]
        validator = jsonschema.Draft4Validator(entry.schema)
        return sorted(f"{_path(e.absolute_path)}: {e.message}" for e in validator.iter_errors(obj))


def strict_schema(schema: Obj) -> Obj:
    """``schema`` as JSON Schema that refuses unknown fields and reads ``nullable``."""
    out = copy.deepcopy(schema)
    _tighten(out)
    return out


def _tighten(schema: Obj) -> None:
    if schema.get("nullable") and isinstance(schema.get("type"), str):
        schema["type"] = [schema["type"], "null"]
    properties = schema.get("properties")
    if isinstance(properties, dict):
        for sub in properties.values():
            _tighten(sub)
        if "additionalProperties" not in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
            schema["additionalProperties"] = False
    for key in ("items", "additionalProperties", "not"):
        if isinstance(schema.get(key), dict):
            _tighten(schema[key])
    for key in ("anyOf", "allOf", "oneOf"):
        for sub in schema.get(key, []):
            _tighten(sub)


def _path(parts: Iterable[object]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text.lstrip(".") or "<root>"


# -- RBAC -------------------------------------------------------------------------------------------

Grant = tuple[str, str, str]  # (verb, apiGroup, resource[/subresource])


def role_grants(role: Mapping[str, Any]) -> tuple[set[Grant], list[str]]:
    """The triples a Role or ClusterRole grants, and what cannot be written as triples.

    Wildcards, ``resourceNames``, ``nonResourceURLs`` and ``aggregationRule`` are listed as
    problems: a least-privilege role for the rotator has no use for any of them.
    """
    grants: set[Grant] = set()
    problems: list[str] = []
    if role.get("aggregationRule"):
        problems.append("aggregationRule: the role's rules come from other roles")
    for index, rule in enumerate(role.get("rules") or []):
        where = f"rules[{index}]"
        for key in ("verbs", "apiGroups", "resources"):
            if "*" in (rule.get(key) or []):
                problems.append(f"{where}.{key} has a wildcard")
        for key in ("resourceNames", "nonResourceURLs"):
            if rule.get(key):
                problems.append(f"{where}.{key} is set")
        grants.update((verb, group, resource) for verb in rule.get("verbs") or []
                      for group in rule.get("apiGroups") or [] for resource in rule.get("resources") or []
                      if "*" not in (verb, group, resource))
    return grants, problems


# -- the rotator's calls, caught under the client ----------------------------------------------------

@dataclass
class Call:
    verb: str
    group: str
    resource: str
    namespace: str
    name: str

    @property
    def grant(self) -> Grant:
        return (self.verb, self.group, self.resource)


@dataclass
class FakeApiServer:
    """Stands in for urllib3's pool manager under the official client: records each request as
    RBAC attributes and answers 200 with a minimal body, or 403 for the grants in ``refuse``.
    """

    refuse: set[Grant] = field(default_factory=set)
    calls: list[Call] = field(default_factory=list)

    def request(self, method: str, url: str, body: str | None = None, **_: Any) -> urllib3.HTTPResponse:
        parts = urlsplit(url)
        info = request_info(method.upper(), parts.path, dict(parse_qsl(parts.query)))
        assert info.is_resource, f"not a resource request: {method} {url}"
        resource = f"{info.resource}/{info.subresource}" if info.subresource else info.resource
        call = Call(info.verb, info.group, resource, info.namespace, info.name)
        self.calls.append(call)
        if call.grant in self.refuse:
            return _answer(403, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                 "reason": "Forbidden", "code": 403, "message": "forbidden"})
        if info.verb == "list":
            return _answer(200, {"apiVersion": f"{info.group}/{info.version}".lstrip("/"),
                                 "kind": "List", "metadata": {"resourceVersion": "1"}, "items": []})
        obj: Obj = {"apiVersion": f"{info.group}/{info.version}".lstrip("/"),
                    "metadata": {"name": info.name, "resourceVersion": "7", "generation": 1,
                                 **({"namespace": info.namespace} if info.namespace else {})}}
        if info.verb == "patch" and body:
            obj["metadata"].update(json.loads(body).get("metadata", {}))
            obj["metadata"]["resourceVersion"] = "8"
        return _answer(200, obj)

    def clear(self) -> None:
        pass  # urllib3's PoolManager API, called by the client's close()


def _answer(status: int, body: Obj) -> urllib3.HTTPResponse:
    return urllib3.HTTPResponse(body=json.dumps(body).encode(), status=status, preload_content=False,
                                headers={"Content-Type": "application/json"},
                                reason="OK" if status == 200 else "Forbidden")


def fake_cluster(server: FakeApiServer) -> Any:
    """A :class:`~rotation.propagation.cluster.Cluster` whose requests go to ``server``."""
    from kubernetes import client

    from rotation.propagation.cluster import RETRIES, Cluster

    configuration = client.Configuration()
    configuration.host = "https://cluster.invalid"
    configuration.retries = RETRIES  # Cluster keeps this client's REST layer as it is
    api = client.ApiClient(configuration)
    cluster = Cluster("fake", api, timeout_seconds=1.0)
    api.rest_client.pool_manager = server
    return cluster


@dataclass(frozen=True)
class CallSet:
    required: dict[Grant, set[str]]  # grant -> the Cluster methods that need it
    optional: dict[Grant, set[str]]  # grant -> methods that go on without it


def cluster_calls(flows: Mapping[str, Callable[[Any], object]]) -> CallSet:
    """Run each flow (``name -> f(cluster)``) once with every call allowed, then once per grant
    it used with that grant refused: a grant whose refusal the flow survives is optional."""
    required: dict[Grant, set[str]] = {}
    optional: dict[Grant, set[str]] = {}
    for name, flow in flows.items():
        server = FakeApiServer()
        flow(fake_cluster(server))
        for grant in {call.grant for call in server.calls}:
            if _survives(flow, grant):
                optional.setdefault(grant, set()).add(name)
            else:
                required.setdefault(grant, set()).add(name)
    for grant in list(optional):
        if grant in required:  # needed by some flow, whatever another one tolerates
            del optional[grant]
    return CallSet(required, optional)


def _survives(flow: Callable[[Any], object], grant: Grant) -> bool:
    from rotation.propagation.cluster import ClusterError

    try:
        flow(fake_cluster(FakeApiServer(refuse={grant})))
    except ClusterError:
        return False
    return True


def iter_kinds(documents: Iterable[Document], *kinds: str) -> Iterator[Document]:
    return (d for d in documents if d.kind in kinds)
