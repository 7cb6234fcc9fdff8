"""The Kubernetes twin's Reloader: which workloads a Secret data change rolls, and how.

Secrets and workloads are written through the official client (``CoreV1Api``, ``AppsV1Api``)
as ESO and users would; the expectations are Reloader 1.4's documented rules (reference
``eso-and-reloader.md`` section 5): a reload only when the SHA1 of the data changes, selection
by ``auto``, ``reload`` (regex list) or ``search`` + ``match``, the ``STAKATER_<NAME>_SECRET``
env var or the ``last-reloaded-from`` annotation, and the generation bump.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from kubernetes import client

from tests.twins.k8s_helpers import (  # noqa: F401 - api_client, apps_api, cluster_twin and core_api are fixtures
    NS,
    api_client,
    apps_api,
    b64,
    call,
    cluster_twin,
    core_api,
    sha1_of,
    workload,
)
from twins.kubernetes import KubernetesTwin
from twins.kubernetes.controllers import Controllers

AUTO = "reloader.stakater.com/auto"
RELOAD = "secret.reloader.stakater.com/reload"
SEARCH = "reloader.stakater.com/search"
MATCH = "reloader.stakater.com/match"
IGNORE = "reloader.stakater.com/ignore"
EXCLUDE = "secrets.exclude.reloader.stakater.com/reload"
LAST_RELOADED = "reloader.stakater.com/last-reloaded-from"


def secret_body(name: str, data: dict[str, str], annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": NS, "annotations": annotations or {}},
        "data": {key: b64(value) for key, value in data.items()},
    }


def two_containers(uses: str | None = None, how: str = "envFrom") -> dict[str, Any]:
    """A pod of ``app`` and ``sidecar``; the sidecar (or an init container) uses the Secret ``uses``."""
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
    return pod


def env_of(obj: Any, container: str) -> dict[str, str]:
    [found] = [c for c in obj.spec.template.spec.containers if c.name == container]
    return {e.name: e.value for e in found.env or [] if e.value is not None}


@dataclass
class Reloader:
    """The cluster's clients and the controllers, driven as ESO and users would."""

    core: client.CoreV1Api
    apps: client.AppsV1Api
    controllers: Controllers

    def secret(self, name: str, data: dict[str, str], annotations: dict[str, str] | None = None) -> None:
        self.core.create_namespaced_secret(NS, secret_body(name, data, annotations))

    def deploy(
        self,
        name: str,
        kind: str = "Deployment",
        *,
        uses: str | None = None,
        how: str = "envFrom",
        **meta: Any,
    ) -> None:
        """Create a two-container workload (``meta``: its ``annotations``/``template_annotations``)."""
        call(self.apps, "create", kind, NS, workload(name, kind, pod=two_containers(uses, how), **meta))

    def arrange(self, kind: str = "Deployment", *, how: str = "envFrom", **meta: Any) -> int:
        """Secret ``db`` (``password=old``), workload ``api`` using it; settled; the generation."""
        self.secret("db", {"password": "old"})
        self.deploy("api", kind, uses="db", how=how, **meta)
        self.controllers.settle()
        generation: int = self.read("api", kind).metadata.generation
        return generation

    def read(self, name: str, kind: str = "Deployment") -> Any:
        return call(self.apps, "read", kind, name, NS)

    def change(self, name: str, data: dict[str, str]) -> None:
        """Patch the Secret's data and let the controllers settle."""
        self.core.patch_namespaced_secret(name, NS, {"data": {k: b64(v) for k, v in data.items()}})
        self.controllers.settle()

    def reloaded(self) -> list[str]:
        return [e.name for e in self.controllers.events if e.reason == "Reloaded"]


@pytest.fixture
def controllers(cluster: KubernetesTwin) -> Iterator[Controllers]:
    with Controllers(cluster, eso=False) as running:
        yield running


@pytest.fixture
def rl(core: client.CoreV1Api, apps: client.AppsV1Api, controllers: Controllers) -> Reloader:
    return Reloader(core, apps, controllers)


def test_auto_workload_is_reloaded_when_the_secret_data_changes(rl: Reloader) -> None:
    generation = rl.arrange(annotations={AUTO: "true"})

    rl.change("db", {"password": "new"})

    deployment = rl.read("api")
    assert deployment.metadata.generation == generation + 1
    assert env_of(deployment, "sidecar")["STAKATER_DB_SECRET"] == sha1_of({"password": "new"})
    assert "STAKATER_DB_SECRET" not in env_of(deployment, "app")  # the container that uses it
    assert deployment.status.observed_generation == deployment.metadata.generation
    [event] = [e for e in rl.controllers.events if e.reason == "Reloaded"]
    assert (event.kind, event.type, event.component) == ("Deployment", "Normal", "reloader-secrets")
    assert event.message == (
        "Changes detected in 'db' of type 'SECRET' in namespace 'apps', "
        "Updated 'api' of type 'Deployment' in namespace 'apps'"
    )


def test_no_reload_when_only_metadata_changes_or_the_data_is_rewritten_unchanged(rl: Reloader) -> None:
    generation = rl.arrange(annotations={AUTO: "true"})

    rl.core.patch_namespaced_secret(
        "db", NS, {"metadata": {"annotations": {"external-secrets.io/force-sync": "1"}}}
    )
    rl.change("db", {"password": "old"})

    assert rl.read("api").metadata.generation == generation
    assert rl.reloaded() == []


def test_a_second_identical_change_does_not_roll_twice(rl: Reloader) -> None:
    rl.arrange(annotations={AUTO: "true"})
    rl.change("db", {"password": "b"})
    generation = rl.read("api").metadata.generation

    rl.change("db", {"password": "old"})
    rl.change("db", {"password": "b"})

    assert rl.read("api").metadata.generation == generation + 2
    assert env_of(rl.read("api"), "sidecar")["STAKATER_DB_SECRET"] == sha1_of({"password": "b"})


@pytest.mark.parametrize(("how", "marked"), [("env", "sidecar"), ("projected", "sidecar"), ("init", "app")])
def test_auto_finds_the_container_that_uses_the_secret(how: str, marked: str, rl: Reloader) -> None:
    rl.arrange(annotations={AUTO: "true"}, how=how)

    rl.change("db", {"password": "new"})

    assert "STAKATER_DB_SECRET" in env_of(rl.read("api"), marked)  # init container: the first container


def test_auto_ignores_a_secret_the_pod_does_not_reference(rl: Reloader) -> None:
    rl.secret("db", {"password": "old"})
    rl.deploy("api", annotations={AUTO: "true"}, uses=None)
    rl.controllers.settle()
    generation = rl.read("api").metadata.generation

    rl.change("db", {"password": "new"})

    assert rl.read("api").metadata.generation == generation


def test_reload_annotation_lists_names_and_anchored_regexes(rl: Reloader) -> None:
    rl.secret("db-main", {"password": "old"})
    rl.deploy("listed", annotations={RELOAD: "other, db-.*"})  # not referenced: still reloaded
    rl.deploy("exact", annotations={RELOAD: "db"})  # ^db$ does not match db-main
    rl.deploy("broken", annotations={RELOAD: "db-(main"})  # invalid regex: skipped
    rl.controllers.settle()

    rl.change("db-main", {"password": "new"})

    assert rl.reloaded() == ["listed"]
    assert "STAKATER_DB_MAIN_SECRET" in env_of(rl.read("listed"), "app")  # the first container


def test_search_needs_the_match_annotation_on_the_secret(rl: Reloader) -> None:
    rl.arrange(annotations={SEARCH: "true"})

    rl.change("db", {"password": "two"})
    assert rl.reloaded() == []

    rl.core.patch_namespaced_secret("db", NS, {"metadata": {"annotations": {MATCH: "true"}}})
    rl.change("db", {"password": "three"})
    assert rl.reloaded() == ["api"]


def test_pod_template_annotations_count_when_the_workload_has_none(rl: Reloader) -> None:
    rl.secret("db", {"password": "old"})
    rl.deploy("api", template_annotations={AUTO: "true"}, uses="db")
    rl.deploy("shadowed", annotations={SEARCH: "true"}, template_annotations={AUTO: "true"}, uses="db")
    rl.controllers.settle()

    rl.change("db", {"password": "new"})

    assert rl.reloaded() == ["api"]  # the workload's own search annotation hides the template's


def test_ignored_and_excluded_secrets_reload_nothing(rl: Reloader) -> None:
    rl.secret("ignored", {"password": "old"}, {IGNORE: "true"})
    rl.secret("excluded", {"password": "old"})
    rl.deploy("a", annotations={AUTO: "true"}, uses="ignored")
    rl.deploy("b", annotations={AUTO: "true", EXCLUDE: "excluded"}, uses="excluded")
    rl.controllers.settle()

    rl.change("ignored", {"password": "new"})
    rl.change("excluded", {"password": "new"})

    assert rl.reloaded() == []


@pytest.mark.parametrize("kind", ["StatefulSet", "DaemonSet"])
def test_stateful_sets_and_daemon_sets_are_reloaded_too(kind: str, rl: Reloader) -> None:
    generation = rl.arrange(kind, annotations={AUTO: "true"})

    rl.change("db", {"password": "new"})

    updated = rl.read("api", kind)
    assert updated.metadata.generation == generation + 1
    assert env_of(updated, "sidecar")["STAKATER_DB_SECRET"] == sha1_of({"password": "new"})
    assert [(e.kind, e.name) for e in rl.controllers.events if e.reason == "Reloaded"] == [(kind, "api")]


def test_annotations_strategy_writes_last_reloaded_from(
    cluster: KubernetesTwin, core: client.CoreV1Api, apps: client.AppsV1Api
) -> None:
    with Controllers(cluster, eso=False, reload_strategy="annotations") as controllers:
        rl = Reloader(core, apps, controllers)
        generation = rl.arrange(annotations={AUTO: "true"})
        started = int(time.time())

        rl.change("db", {"password": "new"})

        deployment = rl.read("api")
    assert deployment.metadata.generation == generation + 1
    source = json.loads(deployment.spec.template.metadata.annotations[LAST_RELOADED])
    assert list(source) == ["type", "name", "namespace", "hash", "containerRefs", "observedAt"]
    assert source["type"] == "SECRET" and source["name"] == "db" and source["namespace"] == NS
    assert source["hash"] == sha1_of({"password": "new"})
    assert source["containerRefs"] == ["sidecar"]
    assert source["observedAt"] >= started
    assert "STAKATER_DB_SECRET" not in env_of(deployment, "sidecar")
