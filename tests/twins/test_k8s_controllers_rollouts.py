"""Rollouts in the Kubernetes twin, judged by ``kubectl rollout status``'s own rules.

:func:`rollout_status` restates ``k8s.io/kubectl/pkg/polymorphichelpers/rollout_status.go``
(reference ``eso-and-reloader.md`` section 5.4) over the official client's models, so the tests
check what the rotator's rollout check will see: in progress during ``rollout_seconds``, done
at the end, and a failed rollout that never completes. The last test runs the whole
propagation: Key Vault value, ESO force-sync, Reloader, rollout.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tests.twins.k8s_helpers import (  # noqa: F401 - api_client, apps_api and cluster_twin are fixtures
    NS,
    api_client,
    apps_api,
    call,
    cluster_store,
    cluster_twin,
    external_secret,
    sha1_of,
)
from tests.twins.k8s_helpers import workload as any_workload
from twins.keyvault import KeyVaultTwin
from twins.kubernetes import ESO_GROUP, KubernetesTwin
from twins.kubernetes.controllers import Controllers

ROLLOUT_SECONDS = 0.4


class RolloutFailed(Exception):
    """kubectl's error: a Deployment exceeded its progress deadline."""


def rollout_status(kind: str, obj: Any) -> tuple[bool, str]:
    """``kubectl rollout status`` for one read of a workload: (done, message)."""
    check = {
        "Deployment": deployment_status,
        "StatefulSet": stateful_set_status,
        "DaemonSet": daemon_set_status,
    }
    return check[kind](obj)


def deployment_status(obj: Any) -> tuple[bool, str]:
    name, generation, spec, status = obj.metadata.name, obj.metadata.generation, obj.spec, obj.status
    if generation > (status.observed_generation or 0):
        return False, "Waiting for deployment spec update to be observed"
    progressing = next((c for c in status.conditions or [] if c.type == "Progressing"), None)
    if progressing is not None and progressing.reason == "ProgressDeadlineExceeded":
        raise RolloutFailed(f'deployment "{name}" exceeded its progress deadline')
    updated, replicas = status.updated_replicas or 0, status.replicas or 0
    if spec.replicas is not None and updated < spec.replicas:
        return False, f"{updated} out of {spec.replicas} new replicas have been updated"
    if replicas > updated:
        return False, f"{replicas - updated} old replicas are pending termination"
    if (status.available_replicas or 0) < updated:
        return False, f"{status.available_replicas or 0} of {updated} updated replicas are available"
    return True, f'deployment "{name}" successfully rolled out'


def stateful_set_status(obj: Any) -> tuple[bool, str]:
    generation, spec, status = obj.metadata.generation, obj.spec, obj.status
    if spec.update_strategy.type != "RollingUpdate":
        raise ValueError("rollout status is only available for RollingUpdate strategy type")
    if not status.observed_generation or generation > status.observed_generation:
        return False, "Waiting for statefulset spec update to be observed"
    if spec.replicas is not None and (status.ready_replicas or 0) < spec.replicas:
        return False, f"Waiting for {spec.replicas - (status.ready_replicas or 0)} pods to be ready"
    rolling = spec.update_strategy.rolling_update
    if rolling is not None:
        partition = rolling.partition
        if (
            spec.replicas is not None
            and partition is not None
            and (status.updated_replicas or 0) < spec.replicas - partition
        ):
            return False, "Waiting for partitioned roll out to finish"
        return (
            True,
            f"partitioned roll out complete: {status.updated_replicas or 0} new pods have been updated",
        )
    if status.update_revision != status.current_revision:
        return False, "waiting for statefulset rolling update to complete"
    return True, "statefulset rolling update complete"


def daemon_set_status(obj: Any) -> tuple[bool, str]:
    name, generation, status = obj.metadata.name, obj.metadata.generation, obj.status
    if generation > (status.observed_generation or 0):
        return False, "Waiting for daemon set spec update to be observed"
    if (status.updated_number_scheduled or 0) < status.desired_number_scheduled:
        return False, "new pods have been updated"
    if (status.number_available or 0) < status.desired_number_scheduled:
        return False, "updated pods are available"
    return True, f'daemon set "{name}" successfully rolled out'


def workload(name: str, kind: str = "Deployment", *, replicas: int = 3, **spec: Any) -> dict[str, Any]:
    """A one-container workload; ``replicas`` for all but a DaemonSet."""
    return any_workload(name, kind, **spec, **({} if kind == "DaemonSet" else {"replicas": replicas}))


@pytest.fixture
def controllers(cluster: KubernetesTwin) -> Iterator[Controllers]:
    with Controllers(cluster, eso=False, reloader=False, rollout_seconds=ROLLOUT_SECONDS, nodes=2) as running:
        yield running


def deploy(
    apps: client.AppsV1Api, controllers: Controllers, kind: str = "Deployment", name: str = "api"
) -> None:
    """Create a workload and let its first rollout finish."""
    call(apps, "create", kind, NS, workload(name, kind))
    controllers.settle()


def status_of(apps: client.AppsV1Api, kind: str, name: str) -> tuple[bool, str]:
    return rollout_status(kind, call(apps, "read", kind, name, NS))


def new_image(apps: client.AppsV1Api, kind: str, name: str, image: str = "registry.example/app:2.0") -> None:
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": image}]}}}}
    call(apps, "patch", kind, name, NS, patch)


@pytest.mark.parametrize("kind", ["Deployment", "StatefulSet", "DaemonSet"])
def test_a_template_change_rolls_out_over_rollout_seconds(
    kind: str, apps: client.AppsV1Api, controllers: Controllers
) -> None:
    deploy(apps, controllers, kind)
    assert status_of(apps, kind, "api")[0]  # the first rollout is done
    started = time.monotonic()

    new_image(apps, kind, "api")
    observed: list[tuple[bool, str]] = [status_of(apps, kind, "api")]
    while not observed[-1][0] and time.monotonic() - started < 10:
        time.sleep(0.05)
        observed.append(status_of(apps, kind, "api"))

    assert observed[-1][0], observed
    assert time.monotonic() - started >= ROLLOUT_SECONDS
    assert not observed[0][0]  # in progress right after the change
    obj = call(apps, "read", kind, "api", NS)
    assert obj.status.observed_generation == obj.metadata.generation == 2


def test_deployment_status_at_the_end_of_a_rollout(apps: client.AppsV1Api, controllers: Controllers) -> None:
    deploy(apps, controllers)
    new_image(apps, "Deployment", "api")
    controllers.settle()

    status = call(apps, "read", "Deployment", "api", NS).status
    assert (status.replicas, status.updated_replicas, status.ready_replicas, status.available_replicas) == (
        3,
        3,
        3,
        3,
    )
    assert status.unavailable_replicas is None
    conditions = {c.type: (c.status, c.reason) for c in status.conditions}
    assert conditions == {"Available": ("True", "MinimumReplicasAvailable"),
                          "Progressing": ("True", "NewReplicaSetAvailable")}  # fmt: skip


def test_statefulset_revisions_converge_and_a_partition_holds_the_lower_ordinals(
    apps: client.AppsV1Api, controllers: Controllers
) -> None:
    call(apps, "create", "StatefulSet", NS, workload("db", "StatefulSet"))
    partitioned = workload(
        "part", "StatefulSet", updateStrategy={"type": "RollingUpdate", "rollingUpdate": {"partition": 2}}
    )
    call(apps, "create", "StatefulSet", NS, partitioned)
    controllers.settle()
    before = call(apps, "read", "StatefulSet", "db", NS).status.update_revision

    new_image(apps, "StatefulSet", "db")
    new_image(apps, "StatefulSet", "part")
    controllers.settle()

    db = call(apps, "read", "StatefulSet", "db", NS).status
    assert db.current_revision == db.update_revision != before
    assert (db.ready_replicas, db.updated_replicas, db.current_replicas) == (3, 3, 3)
    part = call(apps, "read", "StatefulSet", "part", NS).status
    assert part.current_revision != part.update_revision
    assert (part.updated_replicas, part.current_replicas) == (1, 2)
    assert status_of(apps, "StatefulSet", "part") == (
        True,
        "partitioned roll out complete: 1 new pods have been updated",
    )


def test_daemonset_rolls_out_on_every_node(apps: client.AppsV1Api, controllers: Controllers) -> None:
    deploy(apps, controllers, "DaemonSet", "agent")

    status = call(apps, "read", "DaemonSet", "agent", NS).status
    assert (status.desired_number_scheduled, status.updated_number_scheduled, status.number_available) == (
        2,
        2,
        2,
    )


def test_a_failed_deployment_rollout_exceeds_its_progress_deadline_and_never_completes(
    apps: client.AppsV1Api, controllers: Controllers
) -> None:
    deploy(apps, controllers)
    controllers.fail_rollout("Deployment", NS, "api")

    new_image(apps, "Deployment", "api")
    assert not status_of(apps, "Deployment", "api")[0]
    controllers.settle()  # a stalled rollout is not pending work

    with pytest.raises(RolloutFailed, match='deployment "api" exceeded its progress deadline'):
        status_of(apps, "Deployment", "api")
    time.sleep(ROLLOUT_SECONDS)
    with pytest.raises(RolloutFailed):
        status_of(apps, "Deployment", "api")
    status = call(apps, "read", "Deployment", "api", NS).status
    assert status.unavailable_replicas == 1 and status.updated_replicas < 3


@pytest.mark.parametrize("kind", ["StatefulSet", "DaemonSet"])
def test_a_failed_statefulset_or_daemonset_rollout_never_completes(
    kind: str, apps: client.AppsV1Api, controllers: Controllers
) -> None:
    deploy(apps, controllers, kind)
    controllers.fail_rollout(kind, NS, "api")

    new_image(apps, kind, "api")
    controllers.settle()
    time.sleep(ROLLOUT_SECONDS)

    done, message = status_of(apps, kind, "api")
    assert not done, message


def test_a_healed_rollout_completes(apps: client.AppsV1Api, controllers: Controllers) -> None:
    deploy(apps, controllers)
    controllers.fail_rollout("Deployment", NS, "api")
    new_image(apps, "Deployment", "api")
    controllers.settle()

    controllers.fail_rollout("Deployment", NS, "api", failing=False)
    controllers.settle()

    assert status_of(apps, "Deployment", "api") == (True, 'deployment "api" successfully rolled out')


def test_a_paused_deployment_observes_its_generation_but_does_not_roll(
    apps: client.AppsV1Api, controllers: Controllers
) -> None:
    deploy(apps, controllers)
    apps.patch_namespaced_deployment("api", NS, {"spec": {"paused": True}})
    new_image(apps, "Deployment", "api")
    controllers.settle()

    done, message = status_of(apps, "Deployment", "api")
    assert not done and message == "0 out of 3 new replicas have been updated"

    apps.patch_namespaced_deployment("api", NS, {"spec": {"paused": False}})
    controllers.settle()
    assert status_of(apps, "Deployment", "api")[0]


def test_zero_rollout_seconds_completes_at_once(cluster: KubernetesTwin, apps: client.AppsV1Api) -> None:
    with Controllers(cluster, eso=False, reloader=False, rollout_seconds=0) as controllers:
        call(apps, "create", "Deployment", NS, workload("api"))
        started = time.monotonic()
        controllers.settle()
        assert time.monotonic() - started < ROLLOUT_SECONDS
        assert status_of(apps, "Deployment", "api")[0]


# -- the whole propagation ------------------------------------------------------------------------


def test_force_sync_to_reloaded_and_rolled_out(
    cluster: KubernetesTwin, tmp_path: Path, apps: client.AppsV1Api
) -> None:
    with KeyVaultTwin(vault_name="kv-e2e", cert_dir=tmp_path / "kv") as vault:
        kv = vault.secret_client()
        kv.set_secret("db-password", "old")
        cluster.put(cluster_store(vault.url, auth_type=None))
        cluster.put(external_secret("db", refreshPolicy="OnChange"))
        body = workload("api", annotations={"reloader.stakater.com/auto": "true"})
        body["spec"]["template"]["spec"]["containers"][0]["envFrom"] = [{"secretRef": {"name": "db"}}]
        call(apps, "create", "Deployment", NS, body)
        with Controllers(cluster, keyvault=vault, rollout_seconds=ROLLOUT_SECONDS) as controllers:
            controllers.settle()
            generation = call(apps, "read", "Deployment", "api", NS).metadata.generation
            assert status_of(apps, "Deployment", "api")[0]

            kv.set_secret("db-password", "new")
            client.CustomObjectsApi(apps.api_client).patch_namespaced_custom_object(
                ESO_GROUP, "v1", NS, "externalsecrets", "db",
                {"metadata": {"annotations": {"external-secrets.io/force-sync": "rotation-1"}}},
            )  # fmt: skip
            started = time.monotonic()
            controllers.settle()

            assert time.monotonic() - started >= ROLLOUT_SECONDS
            deployment = call(apps, "read", "Deployment", "api", NS)
            assert deployment.metadata.generation == generation + 1
            [env] = deployment.spec.template.spec.containers[0].env
            assert (env.name, env.value) == ("STAKATER_DB_SECRET", sha1_of({"password": "new"}))
            assert rollout_status("Deployment", deployment) == (
                True,
                'deployment "api" successfully rolled out',
            )
            secret = client.CoreV1Api(apps.api_client).read_namespaced_secret("db", NS)
            assert base64.b64decode(secret.data["password"]) == b"new"
