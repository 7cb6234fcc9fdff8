"""The Kubernetes twin's Reloader: which workloads a Secret data change rolls, and how.

Secrets and workloads are written through the official client (``CoreV1Api``, ``AppsV1Api``)
as ESO and users would; the expectations are Reloader 1.4's documented rules (reference
``eso-and-reloader.md`` section 5): a reload only when the SHA1 of the data changes, selection
by ``auto``, ``reload`` (regex list) or ``search`` + ``match``, the ``STAKATER_<NAME>_SECRET``
env var or the ``last-reloaded-from`` annotation, and the generation bump.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from twins.kubernetes import KubernetesTwin
from twins.kubernetes.controllers import Controllers

NS = "apps"
AUTO = "reloader.stakater.com/auto"
RELOAD = "secret.reloader.stakater.com/reload"
SEARCH = "reloader.stakater.com/search"
MATCH = "reloader.stakater.com/match"
IGNORE = "reloader.stakater.com/ignore"
EXCLUDE = "secrets.exclude.reloader.stakater.com/reload"
LAST_RELOADED = "reloader.stakater.com/last-reloaded-from"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def sha1_of(data: dict[str, str]) -> str:
    """Reloader's ``GetSHAfromSecret``, restated: SHA1 of sorted ``k=v`` joined by ``;``."""
    joined = ";".join(sorted(f"{k}={v}" for k, v in data.items()))
    return hashlib.sha1(joined.encode(), usedforsecurity=False).hexdigest()


def secret_body(name: str, data: dict[str, str], annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": NS, "annotations": annotations or {}},
        "data": {key: b64(value) for key, value in data.items()},
    }


def workload(
    name: str,
    kind: str = "Deployment",
    *,
    annotations: dict[str, str] | None = None,
    template_annotations: dict[str, str] | None = None,
    uses: str | None = None,
    how: str = "envFrom",
) -> dict[str, Any]:
    app: dict[str, Any] = {"name": "app", "image": "registry.example/app:1.0"}
    sidecar: dict[str, Any] = {"name": "sidecar", "image": "registry.example/sidecar:1.0"}
    pod: dict[str, Any] = {"containers": [app, sidecar]}
    if uses and how == "envFrom":
        sidecar["envFrom"] = [{"secretRef": {"name": uses}}]
    elif uses and how == "env":
        sidecar["env"] = [
            {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": uses, "key": "password"}}}
        ]
    elif uses and how == "projected":
        pod["volumes"] = [{"name": "creds", "projected": {"sources": [{"secret": {"name": uses}}]}}]
        sidecar["volumeMounts"] = [{"name": "creds", "mountPath": "/creds"}]
    elif uses and how == "init":
        pod["initContainers"] = [{"name": "init", "image": "registry.example/init:1.0",
                                  "envFrom": [{"secretRef": {"name": uses}}]}]  # fmt: skip
    spec: dict[str, Any] = {
        "selector": {"matchLabels": {"app": name}},
        "template": {
            "metadata": {"labels": {"app": name}, "annotations": template_annotations or {}},
            "spec": pod,
        },
    }
    if kind == "StatefulSet":
        spec["serviceName"] = name
    return {
        "apiVersion": "apps/v1",
        "kind": kind,
        "metadata": {"name": name, "namespace": NS, "annotations": annotations or {}},
        "spec": spec,
    }


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[KubernetesTwin]:
    with KubernetesTwin(cert_dir=tmp_path / "k8s") as running:
        running.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
        yield running


@pytest.fixture
def controllers(cluster: KubernetesTwin) -> Iterator[Controllers]:
    with Controllers(cluster, eso=False) as running:
        yield running


@pytest.fixture
def api(cluster: KubernetesTwin) -> Iterator[client.ApiClient]:
    with cluster.api_client() as api_client:
        yield api_client


@pytest.fixture
def core(api: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api)


@pytest.fixture
def apps(api: client.ApiClient) -> client.AppsV1Api:
    return client.AppsV1Api(api)


def create(apps: client.AppsV1Api, body: dict[str, Any]) -> None:
    create_call = {
        "Deployment": apps.create_namespaced_deployment,
        "StatefulSet": apps.create_namespaced_stateful_set,
        "DaemonSet": apps.create_namespaced_daemon_set,
    }[body["kind"]]
    create_call(NS, body)


def read(apps: client.AppsV1Api, name: str, kind: str = "Deployment") -> Any:
    read_call = {
        "Deployment": apps.read_namespaced_deployment,
        "StatefulSet": apps.read_namespaced_stateful_set,
        "DaemonSet": apps.read_namespaced_daemon_set,
    }[kind]
    return read_call(name, NS)


def env_of(obj: Any, container: str) -> dict[str, str]:
    [found] = [c for c in obj.spec.template.spec.containers if c.name == container]
    return {e.name: e.value for e in found.env or [] if e.value is not None}


def change_data(core: client.CoreV1Api, name: str, data: dict[str, str], controllers: Controllers) -> None:
    core.patch_namespaced_secret(name, NS, {"data": {k: b64(v) for k, v in data.items()}})
    controllers.settle()


def reloaded(controllers: Controllers) -> list[str]:
    return [e.name for e in controllers.events if e.reason == "Reloaded"]


def test_auto_workload_is_reloaded_when_the_secret_data_changes(
    core: client.CoreV1Api, apps: client.AppsV1Api, controllers: Controllers
) -> None:
    core.create_namespaced_secret(NS, secret_body("db", {"password": "old"}))
    create(apps, workload("api", annotations={AUTO: "true"}, uses="db"))
    controllers.settle()
    generation = read(apps, "api").metadata.generation

    change_data(core, "db", {"password": "new"}, controllers)

    deployment = read(apps, "api")
    assert deployment.metadata.generation == generation + 1
    assert env_of(deployment, "sidecar")["STAKATER_DB_SECRET"] == sha1_of({"password": "new"})
    assert "STAKATER_DB_SECRET" not in env_of(deployment, "app")  # the container that uses it
    assert deployment.status.observed_generation == deployment.metadata.generation
    [event] = [e for e in controllers.events if e.reason == "Reloaded"]
    assert (event.kind, event.type, event.component) == ("Deployment", "Normal", "reloader-secrets")
    assert event.message == (
        "Changes detected in 'db' of type 'SECRET' in namespace 'apps', "
        "Updated 'api' of type 'Deployment' in namespace 'apps'"
    )


def test_no_reload_when_only_metadata_changes_or_the_data_is_rewritten_unchanged(
    core: client.CoreV1Api, apps: client.AppsV1Api, controllers: Controllers
) -> None:
    core.create_namespaced_secret(NS, secret_body("db", {"password": "same"}))
    create(apps, workload("api", annotations={AUTO: "true"}, uses="db"))
    controllers.settle()
    generation = read(apps, "api").metadata.generation

    core.patch_namespaced_secret(
        "db", NS, {"metadata": {"annotations": {"external-secrets.io/force-sync": "1"}}}
    )
    change_data(core, "db", {"password": "same"}, controllers)

    assert read(apps, "api").metadata.generation == generation
    assert reloaded(controllers) == []


def test_a_second_identical_change_does_not_roll_twice(
    core: client.CoreV1Api, apps: client.AppsV1Api, controllers: Controllers
) -> None:
    core.create_namespaced_secret(NS, secret_body("db", {"password": "a"}))
    create(apps, workload("api", annotations={AUTO: "true"}, uses="db"))
    controllers.settle()
    change_data(core, "db", {"password": "b"}, controllers)
    generation = read(apps, "api").metadata.generation

    change_data(core, "db", {"password": "a"}, controllers)
    change_data(core, "db", {"password": "b"}, controllers)

    assert read(apps, "api").metadata.generation == generation + 2
    assert env_of(read(apps, "api"), "sidecar")["STAKATER_DB_SECRET"] == sha1_of({"password": "b"})


@pytest.mark.parametrize(("how", "marked"), [("env", "sidecar"), ("projected", "sidecar"), ("init", "app")])
def test_auto_finds_the_container_that_uses_the_secret(
    how: str, marked: str, core: client.CoreV1Api, apps: client.AppsV1Api, controllers: Controllers
) -> None:
    core.create_namespaced_secret(NS, secret_body("db", {"password": "old"}))
    create(apps, workload("api", annotations={AUTO: "true"}, uses="db", how=how))
    controllers.settle()

    change_data(core, "db", {"password": "new"}, controllers)

    assert "STAKATER_DB_SECRET" in env_of(read(apps, "api"), marked)  # init container: the first container


def test_auto_ignores_a_secret_the_pod_does_not_reference(
    core: client.CoreV1Api, apps: client.AppsV1Api, controllers: Controllers
) -> None:
    core.create_namespaced_secret(NS, secret_body("db", {"password": "old"}))
    create(apps, workload("api", annotations={AUTO: "true"}, uses=None))
    controllers.settle()
    generation = read(apps, "api").metadata.generation

    change_data(core, "db", {"password": "new"}, controllers)

    assert read(apps, "api").metadata.generation == generation


def test_reload_annotation_lists_names_and_anchored_regexes(
    core: client.CoreV1Api, apps: client.AppsV1Api, controllers: Controllers
) -> None:
    core.create_namespaced_secret(NS, secret_body("db-main", {"password": "old"}))
    create(apps, workload("listed", annotations={RELOAD: "other, db-.*"}))  # not referenced: still reloaded
    create(apps, workload("exact", annotations={RELOAD: "db"}))  # ^db$ does not match db-main
    create(apps, workload("broken", annotations={RELOAD: "db-(main"}))  # invalid regex: skipped
    controllers.settle()

    change_data(core, "db-main", {"password": "new"}, controllers)

    assert reloaded(controllers) == ["listed"]
    assert "STAKATER_DB_MAIN_SECRET" in env_of(read(apps, "listed"), "app")  # the first container


def test_search_needs_the_match_annotation_on_the_secret(
    core: client.CoreV1Api, apps: client.AppsV1Api, controllers: Controllers
) -> None:
    core.create_namespaced_secret(NS, secret_body("db", {"password": "one"}))
    create(apps, workload("api", annotations={SEARCH: "true"}, uses="db"))
    controllers.settle()

    change_data(core, "db", {"password": "two"}, controllers)
    assert reloaded(controllers) == []

    core.patch_namespaced_secret("db", NS, {"metadata": {"annotations": {MATCH: "true"}}})
    change_data(core, "db", {"password": "three"}, controllers)
    assert reloaded(controllers) == ["api"]


def test_pod_template_annotations_count_when_the_workload_has_none(
    core: client.CoreV1Api, apps: client.AppsV1Api, controllers: Controllers
) -> None:
    core.create_namespaced_secret(NS, secret_body("db", {"password": "old"}))
    create(apps, workload("api", template_annotations={AUTO: "true"}, uses="db"))
    create(
        apps,
        workload("shadowed", annotations={SEARCH: "true"}, template_annotations={AUTO: "true"}, uses="db"),
    )
    controllers.settle()

    change_data(core, "db", {"password": "new"}, controllers)

    assert reloaded(controllers) == ["api"]  # the workload's own search annotation hides the template's


def test_ignored_and_excluded_secrets_reload_nothing(
    core: client.CoreV1Api, apps: client.AppsV1Api, controllers: Controllers
) -> None:
    core.create_namespaced_secret(NS, secret_body("ignored", {"password": "old"}, {IGNORE: "true"}))
    core.create_namespaced_secret(NS, secret_body("excluded", {"password": "old"}))
    create(apps, workload("a", annotations={AUTO: "true"}, uses="ignored"))
    create(apps, workload("b", annotations={AUTO: "true", EXCLUDE: "excluded"}, uses="excluded"))
    controllers.settle()

    change_data(core, "ignored", {"password": "new"}, controllers)
    change_data(core, "excluded", {"password": "new"}, controllers)

    assert reloaded(controllers) == []


@pytest.mark.parametrize("kind", ["StatefulSet", "DaemonSet"])
def test_stateful_sets_and_daemon_sets_are_reloaded_too(
    kind: str, core: client.CoreV1Api, apps: client.AppsV1Api, controllers: Controllers
) -> None:
    core.create_namespaced_secret(NS, secret_body("db", {"password": "old"}))
    create(apps, workload("api", kind, annotations={AUTO: "true"}, uses="db"))
    controllers.settle()
    generation = read(apps, "api", kind).metadata.generation

    change_data(core, "db", {"password": "new"}, controllers)

    updated = read(apps, "api", kind)
    assert updated.metadata.generation == generation + 1
    assert env_of(updated, "sidecar")["STAKATER_DB_SECRET"] == sha1_of({"password": "new"})
    assert [(e.kind, e.name) for e in controllers.events if e.reason == "Reloaded"] == [(kind, "api")]


def test_annotations_strategy_writes_last_reloaded_from(
    cluster: KubernetesTwin, core: client.CoreV1Api, apps: client.AppsV1Api
) -> None:
    with Controllers(cluster, eso=False, reload_strategy="annotations") as controllers:
        core.create_namespaced_secret(NS, secret_body("db", {"password": "old"}))
        create(apps, workload("api", annotations={AUTO: "true"}, uses="db"))
        controllers.settle()
        generation = read(apps, "api").metadata.generation
        started = int(time.time())

        change_data(core, "db", {"password": "new"}, controllers)

        deployment = read(apps, "api")
    assert deployment.metadata.generation == generation + 1
    source = json.loads(deployment.spec.template.metadata.annotations[LAST_RELOADED])
    assert list(source) == ["type", "name", "namespace", "hash", "containerRefs", "observedAt"]
    assert source["type"] == "SECRET" and source["name"] == "db" and source["namespace"] == NS
    assert source["hash"] == sha1_of({"password": "new"})
    assert source["containerRefs"] == ["sidecar"]
    assert source["observedAt"] >= started
    assert "STAKATER_DB_SECRET" not in env_of(deployment, "sidecar")
