"""A Kubernetes cluster as propagation sees it, through the official ``kubernetes`` client.

The only module that imports the client (``tests/unit/test_architecture.py``). It reads the
objects matching needs with exactly the verbs ``infra/k8s/rbac.yaml`` grants: ``list`` on
ExternalSecrets, ClusterExternalSecrets, SecretStores and ClusterSecretStores. Namespaces
(for ClusterSecretStore conditions) are read when the role allows it and skipped when not.
``external-secrets.io/v1`` is read first; a cluster that serves only ``v1beta1`` is read at
that version.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

GROUP = "external-secrets.io"
VERSIONS = ("v1", "v1beta1")
PLURALS = {"ExternalSecret": "externalsecrets", "ClusterExternalSecret": "clusterexternalsecrets",
           "SecretStore": "secretstores", "ClusterSecretStore": "clustersecretstores"}


class ClusterError(RuntimeError):
    """The cluster could not be read; the message says which call and why, no credentials."""


def client_from_kubeconfig(path: Path, context: str | None = None) -> client.ApiClient:
    """An API client for ``context`` (default: the file's current context)."""
    try:
        made: client.ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=str(path), context=context)
        return made
    except (config.ConfigException, OSError, ValueError) as exc:
        raise ClusterError(f"cannot use kubeconfig {path}: {exc}") from None


def eso_objects(api: client.ApiClient) -> list[Mapping[str, object]]:
    """Every ES, CES, SecretStore and ClusterSecretStore, and the Namespaces if readable."""
    custom = client.CustomObjectsApi(api)
    found: list[Mapping[str, object]] = []
    for kind, plural in PLURALS.items():
        found.extend(_list_kind(custom, kind, plural))
    try:
        namespaces = api.sanitize_for_serialization(  # type: ignore[no-untyped-call]
            client.CoreV1Api(api).list_namespace())
        found.extend(_items(namespaces, "v1", "Namespace"))
    except ApiException as exc:
        if exc.status not in (401, 403):
            raise ClusterError(f"list namespaces: HTTP {exc.status} {exc.reason}") from None
    return found


def _list_kind(custom: client.CustomObjectsApi, kind: str, plural: str) -> list[Mapping[str, object]]:
    for version in VERSIONS:
        try:
            answer = custom.list_cluster_custom_object(GROUP, version, plural)
        except ApiException as exc:
            if exc.status == 404:
                continue  # this version is not served here
            raise ClusterError(f"list {plural}.{GROUP}/{version}: HTTP {exc.status} {exc.reason}") from None
        return _items(answer, f"{GROUP}/{version}", kind)
    return []


def _items(answer: Any, api_version: str, kind: str) -> list[Mapping[str, object]]:
    """A list's items, with the apiVersion and kind the API server leaves out of them."""
    items = answer.get("items", []) if isinstance(answer, dict) else []
    return [{"apiVersion": api_version, "kind": kind, **item} for item in items if isinstance(item, dict)]

