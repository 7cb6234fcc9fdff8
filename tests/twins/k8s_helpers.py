"""Shared builders and fixtures for the Kubernetes twin's controller tests.

The object builders write what ESO, Reloader and ``kubectl`` users write: an ESO
``ClusterSecretStore`` and ``ExternalSecret`` for the Key Vault twin, and an ``apps/v1`` workload.
The fixtures open the official client on a test module's ``cluster`` fixture; a module imports the
ones it uses (they are registered under the names ``cluster``, ``api``, ``core``, ``apps`` and ``custom``).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from twins.kubernetes import ESO_GROUP, KubernetesTwin

NS = "apps"
APP_IMAGE = "registry.example/app:1.0"
STORE_REF = {"name": "vault", "kind": "ClusterSecretStore"}


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def sha1_of(data: dict[str, str]) -> str:
    """Reloader's ``GetSHAfromSecret``, restated: SHA1 of sorted ``k=v`` joined by ``;``."""
    joined = ";".join(sorted(f"{k}={v}" for k, v in data.items()))
    return hashlib.sha1(joined.encode(), usedforsecurity=False).hexdigest()


# -- object builders ------------------------------------------------------------------------------


def cluster_store(
    vault_url: str, name: str = "vault", auth_type: str | None = "WorkloadIdentity"
) -> dict[str, Any]:
    azurekv: dict[str, Any] = {"vaultUrl": vault_url}
    if auth_type is not None:
        azurekv["authType"] = auth_type
    return {
        "apiVersion": f"{ESO_GROUP}/v1",
        "kind": "ClusterSecretStore",
        "metadata": {"name": name},
        "spec": {"provider": {"azurekv": azurekv}},
    }


def external_secret(name: str, **spec: Any) -> dict[str, Any]:
    """An ExternalSecret in ``NS`` reading ``<name>-password`` into the key ``password``."""
    return {
        "apiVersion": f"{ESO_GROUP}/v1",
        "kind": "ExternalSecret",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "secretStoreRef": dict(STORE_REF),
            "data": [{"secretKey": "password", "remoteRef": {"key": f"{name}-password"}}],
            **spec,
        },
    }


def workload(
    name: str,
    kind: str = "Deployment",
    *,
    pod: dict[str, Any] | None = None,
    annotations: dict[str, str] | None = None,
    template_annotations: dict[str, str] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    """An ``apps/v1`` workload in ``NS`` (one ``app`` container unless ``pod`` is given)."""
    body: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": kind,
        "metadata": {"name": name, "namespace": NS, "annotations": annotations or {}},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}, "annotations": template_annotations or {}},
                "spec": pod or {"containers": [{"name": "app", "image": APP_IMAGE}]},
            },
            **spec,
        },
    }
    if kind == "StatefulSet":
        body["spec"]["serviceName"] = name
    return body


def call(apps: client.AppsV1Api, verb: str, kind: str, *args: Any) -> Any:
    """``apps.<verb>_namespaced_<kind>(*args)``: a workload call for any of the three kinds."""
    suffix = {"Deployment": "deployment", "StatefulSet": "stateful_set", "DaemonSet": "daemon_set"}[kind]
    return getattr(apps, f"{verb}_namespaced_{suffix}")(*args)


# -- fixtures -------------------------------------------------------------------------------------


@contextmanager
def namespaced_cluster(tmp_path: Path) -> Iterator[KubernetesTwin]:
    """A running Kubernetes twin with the namespace ``NS``."""
    with KubernetesTwin(cert_dir=tmp_path / "k8s") as running:
        running.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
        yield running


@pytest.fixture(name="cluster")
def cluster_twin(tmp_path: Path) -> Iterator[KubernetesTwin]:
    with namespaced_cluster(tmp_path) as running:
        yield running


@pytest.fixture(name="api")
def api_client(cluster: KubernetesTwin) -> Iterator[client.ApiClient]:
    with cluster.api_client() as opened:
        yield opened


@pytest.fixture(name="core")
def core_api(api: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api)


@pytest.fixture(name="apps")
def apps_api(api: client.ApiClient) -> client.AppsV1Api:
    return client.AppsV1Api(api)


@pytest.fixture(name="custom")
def custom_api(api: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api)
