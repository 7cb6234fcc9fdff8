"""What propagation needs of a cluster, as a protocol, so the core never imports ``kubernetes``.

:class:`rotation.propagation.cluster.Cluster` implements it with the official client; the
exact verbs are those ``infra/k8s/rbac.yaml`` grants (list and patch ESO objects, list
workloads), and nothing reads a Secret.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol


class ClusterError(RuntimeError):
    """The cluster could not be read or written; the message names the call, never a token."""


class ClusterApi(Protocol):
    """One cluster, as the propagation step uses it."""

    name: str

    def eso_objects(self) -> list[Mapping[str, object]]:
        """Every ExternalSecret, ClusterExternalSecret, SecretStore, ClusterSecretStore."""
        ...

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """One ESO object (``namespace`` empty for a ClusterExternalSecret); None if gone."""
        ...

    def force_sync(self, api_version: str, kind: str, namespace: str, name: str,
                   value: str) -> dict[str, Any] | None:
        """Set ``external-secrets.io/force-sync`` to ``value`` (no write if it already is)."""
        ...

    def workloads(self, namespace: str) -> list[dict[str, Any]]:
        """The namespace's Deployments, StatefulSets and DaemonSets."""
        ...
