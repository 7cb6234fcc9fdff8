"""The resource types the twin serves, and how each one behaves on writes.

A :class:`ResourceType` is what the API server knows about a resource from its registration
(built-in types) or its CustomResourceDefinition (ESO's): group, served versions, kind,
plural, scope, subresources, and the few strategy switches that differ between them. The
switches mirror the real registry strategies (``pkg/registry/<group>/<resource>/strategy.go``
and ``apiextensions-apiserver/pkg/registry/customresource/strategy.go``):

- ``generation``: which change bumps ``metadata.generation``: ``"spec"`` (StatefulSet,
  DaemonSet), ``"spec+annotations"`` (Deployment: annotations are copied to its ReplicaSets),
  ``"non-metadata"`` (custom resources: anything outside ``metadata`` and ``status``), or
  ``None`` (Secret, Namespace: no generation at all);
- ``unconditional_update``: whether a PUT without ``metadata.resourceVersion`` is accepted
  (built-ins yes; custom resources no: 422 "must be specified for an update");
- ``returns_deleted_object``: DELETE answers with the object (custom resources) or with a
  ``Status`` naming it (built-ins).

Only kinds are listed here; their schemas (for ESO) are in :mod:`twins.kubernetes.validation`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

Obj = dict[str, Any]
"""A Kubernetes object (or any JSON object) as decoded from the wire."""

Generation = Literal["spec", "spec+annotations", "non-metadata"] | None

ESO_GROUP = "external-secrets.io"
ESO_VERSIONS = ("v1", "v1beta1")
"""Served ESO versions, preferred first. ESO 0.16 served both (v1 storage); from 0.17 v1beta1
is ``served: false`` unless the chart's ``crds.unsafeServeV1Beta1`` is set."""

RESOURCE_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update")
SUBRESOURCE_VERBS = ("get", "patch", "update")


@dataclass(frozen=True)
class ResourceType:
    """One resource: ``secrets``, ``deployments.apps``, ``externalsecrets.external-secrets.io``..."""

    group: str
    versions: tuple[str, ...]
    kind: str
    plural: str
    singular: str
    namespaced: bool
    custom: bool = False
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    generation: Generation = None
    verbs: tuple[str, ...] = RESOURCE_VERBS
    deprecated_versions: tuple[str, ...] = ()

    @property
    def list_kind(self) -> str:
        """``ExternalSecretList``, ``SecretList``..."""
        return f"{self.kind}List"

    @property
    def group_resource(self) -> str:
        """``externalsecrets.external-secrets.io``, or ``secrets`` in the core group (how errors name it)."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def group_kind(self) -> str:
        """``ExternalSecret.external-secrets.io``, ``Deployment.apps``, ``Secret`` (how 422s name it)."""
        return f"{self.kind}.{self.group}" if self.group else self.kind

    @property
    def unconditional_update(self) -> bool:
        """A PUT may omit ``metadata.resourceVersion`` (not for custom resources)."""
        return not self.custom

    @property
    def returns_deleted_object(self) -> bool:
        """DELETE answers with the object itself (custom resources) rather than a Status."""
        return self.custom

    @property
    def preferred_version(self) -> str:
        """The first served version (the storage version for ESO)."""
        return self.versions[0]

    def api_version(self, version: str | None = None) -> str:
        """``external-secrets.io/v1``, ``apps/v1``, ``v1``."""
        version = version or self.preferred_version
        return f"{self.group}/{version}" if self.group else version


def _eso(kind: str, plural: str, short: str, *, namespaced: bool, versions: tuple[str, ...]) -> ResourceType:
    return ResourceType(
        group=ESO_GROUP,
        versions=versions,
        kind=kind,
        plural=plural,
        singular=kind.lower(),
        namespaced=namespaced,
        custom=True,
        short_names=(short,),
        categories=("external-secrets",),
        subresources=("status",),
        generation="non-metadata",
        deprecated_versions=tuple(v for v in versions if v != "v1"),
    )


def eso_types(versions: Iterable[str] = ESO_VERSIONS) -> tuple[ResourceType, ...]:
    """ExternalSecret, ClusterExternalSecret, SecretStore, ClusterSecretStore at ``versions``."""
    served = tuple(versions)
    if not served:
        raise ValueError("serve at least one ESO version")
    unknown = set(served) - set(ESO_VERSIONS)
    if unknown:
        raise ValueError(f"unknown ESO versions: {', '.join(sorted(unknown))}")
    return (
        _eso("ExternalSecret", "externalsecrets", "es", namespaced=True, versions=served),
        _eso("ClusterExternalSecret", "clusterexternalsecrets", "ces", namespaced=False, versions=served),
        _eso("SecretStore", "secretstores", "ss", namespaced=True, versions=served),
        _eso("ClusterSecretStore", "clustersecretstores", "css", namespaced=False, versions=served),
    )


BUILTIN_TYPES: tuple[ResourceType, ...] = (
    ResourceType("", ("v1",), "Namespace", "namespaces", "namespace", namespaced=False,
                 short_names=("ns",), subresources=("status",),
                 verbs=("create", "delete", "get", "list", "patch", "update")),
    ResourceType("", ("v1",), "Secret", "secrets", "secret", namespaced=True),
    ResourceType("apps", ("v1",), "Deployment", "deployments", "deployment", namespaced=True,
                 short_names=("deploy",), categories=("all",), subresources=("status",),
                 generation="spec+annotations"),
    ResourceType("apps", ("v1",), "StatefulSet", "statefulsets", "statefulset", namespaced=True,
                 short_names=("sts",), categories=("all",), subresources=("status",), generation="spec"),
    ResourceType("apps", ("v1",), "DaemonSet", "daemonsets", "daemonset", namespaced=True,
                 short_names=("ds",), categories=("all",), subresources=("status",), generation="spec"),
)  # fmt: skip


class Registry:
    """Every served type, found by (group, version, plural), by kind, or by apiVersion + kind."""

    def __init__(self, types: Iterable[ResourceType]) -> None:
        self._types = tuple(types)
        self._by_plural = {(t.group, t.plural): t for t in self._types}
        self._by_kind = {t.kind: t for t in self._types}
        if len(self._by_kind) != len(self._types) or len(self._by_plural) != len(self._types):
            raise ValueError("resource types must have distinct kinds and plurals")

    def __iter__(self) -> Iterator[ResourceType]:
        return iter(self._types)

    def lookup(self, group: str, version: str, plural: str) -> ResourceType | None:
        """The type served at ``/apis/{group}/{version}/{plural}`` (or ``/api/v1/{plural}``)."""
        found = self._by_plural.get((group, plural))
        return found if found is not None and version in found.versions else None

    def by_kind(self, kind: str) -> ResourceType:
        """The type of ``kind`` (``KeyError`` for a kind the twin does not serve)."""
        try:
            return self._by_kind[kind]
        except KeyError:
            raise KeyError(f"the twin serves no kind {kind!r}") from None

    def for_object(self, api_version: str, kind: str) -> tuple[ResourceType, str]:
        """The type and version of an object's ``apiVersion`` and ``kind`` (``KeyError`` if unserved)."""
        resource_type = self.by_kind(kind)
        group, _, version = api_version.rpartition("/")
        if group != resource_type.group or version not in resource_type.versions:
            raise KeyError(f"the twin serves no {kind} at {api_version!r}")
        return resource_type, version

    def groups(self) -> dict[str, list[str]]:
        """Named API groups and their versions, preferred first (the core group excluded)."""
        groups: dict[str, list[str]] = {}
        for resource_type in self._types:
            if not resource_type.group:
                continue
            versions = groups.setdefault(resource_type.group, [])
            versions.extend(v for v in resource_type.versions if v not in versions)
        return groups
