"""Confirming propagation from objects alone: ESO's sync, kubectl's rollout rules, and which
workloads Reloader restarts (rotation/propagation/confirm.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from rotation.propagation.confirm import (
    FORCE_SYNC,
    before,
    force_sync_patch,
    reloader_watches,
    rollout_state,
    sync_state,
)

PATCHED = datetime(2026, 12, 2, 10, 0, 0, 500000, tzinfo=UTC)


def es(version: str | None, *, ready: str = "True", reason: str = "SecretSynced",
       refreshed: datetime | None = None, changed: datetime | None = None,
       generation: int = 3, message: str = "secret synced") -> dict[str, Any]:
    status: dict[str, Any] = {"conditions": [{
        "type": "Ready", "status": ready, "reason": reason, "message": message,
        "lastTransitionTime": (changed or PATCHED - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")}]}
    if version is not None:
        status["syncedResourceVersion"] = version
    if refreshed is not None:
        status["refreshTime"] = refreshed.strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"metadata": {"name": "app-db", "namespace": "team-a", "generation": generation},
            "status": status}


BEFORE = before(es("3-aaaa", refreshed=PATCHED - timedelta(hours=1)))


def test_the_patch_sets_the_force_sync_annotation() -> None:
    assert force_sync_patch("r-1") == {"metadata": {"annotations": {FORCE_SYNC: "r-1"}}}
    assert BEFORE.synced_resource_version == "3-aaaa"


@pytest.mark.parametrize(("after", "state", "reason"), [
    (es("3-aaaa", refreshed=PATCHED - timedelta(hours=1)), "waiting", "not synced since the patch"),
    (es("3-bbbb", refreshed=PATCHED), "done", "synced at"),
    (es("3-bbbb", refreshed=PATCHED.replace(microsecond=0)), "done", "synced at"),  # second precision
    (es("3-bbbb", refreshed=PATCHED - timedelta(minutes=5)), "waiting", "started before the patch"),
    (es("2-bbbb", refreshed=PATCHED), "waiting", "synced generation 2, not 3"),
    (es("3-bbbb", ready="Unknown", reason="Progressing", refreshed=PATCHED), "waiting", "Ready is Unknown"),
    (es("3-aaaa", ready="False", reason="SecretSyncedError", changed=PATCHED + timedelta(seconds=2),
        message="could not get secret data from provider"), "failed",
     "ESO could not sync: could not get secret data from provider"),
    # A failure from before the patch is not this sync's answer.
    (es("3-aaaa", ready="False", reason="SecretSyncedError", changed=PATCHED - timedelta(hours=2)),
     "waiting", "not synced since the patch"),
    ({"metadata": {}, "status": "garbage"}, "waiting", "not synced"),
])
def test_a_sync_is_done_only_when_eso_says_so_after_the_patch(after: dict[str, Any], state: str,
                                                               reason: str) -> None:
    outcome = sync_state(after, BEFORE, PATCHED)
    assert outcome.state == state and reason in outcome.reason


def deployment(generation: int = 2, observed: int = 2, replicas: int = 3, updated: int = 3,
               total: int = 3, available: int = 3, deadline: bool = False) -> dict[str, Any]:
    conditions = [{"type": "Progressing", "status": "False",
                   "reason": "ProgressDeadlineExceeded"}] if deadline else []
    return {"kind": "Deployment", "metadata": {"generation": generation},
            "spec": {"replicas": replicas},
            "status": {"observedGeneration": observed, "updatedReplicas": updated, "replicas": total,
                       "availableReplicas": available, "conditions": conditions}}


@pytest.mark.parametrize(("workload", "state", "reason"), [
    (deployment(), "done", "rolled out"),
    (deployment(generation=3), "waiting", "has not seen the new template"),
    (deployment(updated=1), "waiting", "1 of 3 replicas updated"),
    (deployment(total=4), "waiting", "1 old replicas pending termination"),
    (deployment(available=2), "waiting", "2 of 3 updated replicas available"),
    (deployment(deadline=True), "failed", "exceeded its progress deadline"),
    ({"kind": "StatefulSet", "metadata": {"generation": 1}, "spec": {"replicas": 2},
      "status": {"observedGeneration": 1, "readyReplicas": 2, "currentRevision": "a", "updateRevision": "b"}},
     "waiting", "new revision"),
    ({"kind": "StatefulSet", "metadata": {"generation": 1}, "spec": {"replicas": 2},
      "status": {"observedGeneration": 1, "readyReplicas": 2, "currentRevision": "b", "updateRevision": "b"}},
     "done", "rolled out"),
    ({"kind": "StatefulSet", "metadata": {"generation": 1},
      "spec": {"replicas": 4, "updateStrategy": {"rollingUpdate": {"partition": 3}}},
      "status": {"observedGeneration": 1, "readyReplicas": 4, "updatedReplicas": 1}},
     "done", "partitioned"),
    ({"kind": "StatefulSet", "metadata": {"generation": 1}, "spec": {"updateStrategy": {"type": "OnDelete"}},
      "status": {"observedGeneration": 1}}, "failed", "OnDelete"),
    ({"kind": "StatefulSet", "metadata": {"generation": 0}, "status": {"observedGeneration": 0}},
     "waiting", "has not seen"),
    ({"kind": "DaemonSet", "metadata": {"generation": 5},
      "status": {"observedGeneration": 5, "desiredNumberScheduled": 3, "updatedNumberScheduled": 3,
                 "numberAvailable": 2}}, "waiting", "2 of 3 updated pods available"),
    ({"kind": "DaemonSet", "metadata": {"generation": 5},
      "status": {"observedGeneration": 5, "desiredNumberScheduled": 3, "updatedNumberScheduled": 3,
                 "numberAvailable": 3}}, "done", "rolled out"),
    ({"kind": "CronJob", "metadata": {}}, "failed", "not a workload"),
])
def test_rollouts_follow_kubectls_rules(workload: dict[str, Any], state: str, reason: str) -> None:
    outcome = rollout_state(workload)
    assert outcome.state == state and reason in outcome.reason


def pod(annotations: dict[str, str] | None = None, *, template: dict[str, str] | None = None,
        env: str | None = None, env_from: str | None = None, volume: str | None = None,
        projected: str | None = None, mounted: bool = True) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "app"}
    if mounted:
        container["volumeMounts"] = [{"name": "v", "mountPath": "/v"}, {"name": "p", "mountPath": "/p"}]
    if env:
        container["env"] = [{"name": "PW", "valueFrom": {"secretKeyRef": {"name": env, "key": "password"}}}]
    if env_from:
        container["envFrom"] = [{"secretRef": {"name": env_from}}]
    volumes = []
    if volume:
        volumes.append({"name": "v", "secret": {"secretName": volume}})
    if projected:
        volumes.append({"name": "p", "projected": {"sources": [{"secret": {"name": projected}}]}})
    return {"kind": "Deployment", "metadata": {"annotations": annotations or {}},
            "spec": {"template": {"metadata": {"annotations": template or {}},
                                  "spec": {"containers": [container], "volumes": volumes}}}}


AUTO = {"reloader.stakater.com/auto": "true"}


@pytest.mark.parametrize(("workload", "secret_annotations", "watched"), [
    (pod(AUTO, env="db"), {}, True),
    (pod(AUTO, env_from="db"), {}, True),
    (pod(AUTO, volume="db"), {}, True),
    (pod(AUTO, projected="db"), {}, True),
    (pod(AUTO, volume="db", mounted=False), {}, False),      # declared, mounted by no container
    (pod(AUTO, projected="db", mounted=False), {}, False),
    (pod(AUTO, env="db-admin"), {}, False),                 # auto needs a reference
    (pod({"secret.reloader.stakater.com/auto": "true"}, env="db"), {}, True),
    (pod({"secret.reloader.stakater.com/reload": "cache, db"}), {}, True),  # listed, unreferenced
    (pod({"secret.reloader.stakater.com/reload": "d"}), {}, False),         # anchored: d is not db
    (pod({"secret.reloader.stakater.com/reload": "d.*"}), {}, True),
    (pod({"secret.reloader.stakater.com/reload": "(a|a)*b"}), {}, False),   # linear time, no match
    (pod({"reloader.stakater.com/search": "true"}, env="db"), {"reloader.stakater.com/match": "true"}, True),
    (pod({"reloader.stakater.com/search": "true"}, env="db"), {}, False),
    (pod(AUTO, env="db"), {"reloader.stakater.com/ignore": "true"}, False),
    (pod({**AUTO, "secrets.exclude.reloader.stakater.com/reload": "other,db"}, env="db"), {}, False),
    (pod(template=AUTO, env="db"), {}, True),                # read from the pod template
    (pod({"unrelated": "x"}, template=AUTO, env="db"), {}, True),
    (pod(env="db"), {}, False),                              # not annotated at all
])
def test_which_workloads_reloader_restarts(workload: dict[str, Any], secret_annotations: dict[str, str],
                                           watched: bool) -> None:
    assert reloader_watches(workload, "db", secret_annotations) is watched
