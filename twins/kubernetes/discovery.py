"""Discovery documents: ``/api``, ``/api/v1``, ``/apis``, ``/apis/{group}[/{version}]``, ``/version``.

Shapes as the API server serves them (https://kubernetes.io/docs/concepts/overview/kubernetes-api/#discovery-api,
unaggregated form: an ``Accept`` asking for the aggregated ``apidiscovery.k8s.io/v2`` form gets
these too, which clients accept as the fallback). Each served resource is listed with its
subresources as ``plural/status`` entries (verbs get, patch, update). ``watch`` is not among
the verbs, because the twin does not serve watches.
"""

from __future__ import annotations

from twins.kubernetes.kinds import SUBRESOURCE_VERBS, Obj, Registry, ResourceType

KUBERNETES_VERSION = {
    "major": "1",
    "minor": "33",
    "gitVersion": "v1.33.1-twin",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.24.0",
    "compiler": "gc",
    "platform": "linux/amd64",
}


def core_versions(server_address: str) -> Obj:
    """``GET /api``."""
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    }


def group_list(registry: Registry) -> Obj:
    """``GET /apis``: every named group with its versions, preferred first."""
    return {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [_group(name, versions) for name, versions in registry.groups().items()],
    }


def group(registry: Registry, name: str) -> Obj | None:
    """``GET /apis/{group}``, or ``None`` for a group the twin does not serve."""
    versions = registry.groups().get(name)
    if versions is None:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group(name, versions)}


def resource_list(registry: Registry, group_name: str, version: str) -> Obj | None:
    """``GET /api/v1`` or ``GET /apis/{group}/{version}``, or ``None`` if not served."""
    types = [t for t in registry if t.group == group_name and version in t.versions]
    if not types:
        return None
    body: Obj = {"kind": "APIResourceList"}
    if group_name:
        body["apiVersion"] = "v1"
    body["groupVersion"] = f"{group_name}/{version}" if group_name else version
    body["resources"] = [entry for t in types for entry in _resources(t)]
    return body


def _group(name: str, versions: list[str]) -> Obj:
    listed = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"name": name, "versions": listed, "preferredVersion": listed[0]}


def _resources(resource_type: ResourceType) -> list[Obj]:
    main: Obj = {
        "name": resource_type.plural,
        "singularName": resource_type.singular,
        "namespaced": resource_type.namespaced,
        "kind": resource_type.kind,
        "verbs": sorted(resource_type.verbs),
    }
    if resource_type.short_names:
        main["shortNames"] = list(resource_type.short_names)
    if resource_type.categories:
        main["categories"] = list(resource_type.categories)
    entries = [main]
    for subresource in resource_type.subresources:
        entries.append(
            {
                "name": f"{resource_type.plural}/{subresource}",
                "singularName": "",
                "namespaced": resource_type.namespaced,
                "kind": resource_type.kind,
                "verbs": list(SUBRESOURCE_VERBS),
            }
        )
    return entries
