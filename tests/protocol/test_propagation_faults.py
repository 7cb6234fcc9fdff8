"""Faults at propagation's boundaries, in worker processes, with the Kubernetes twin running
ESO, Reloader and rollouts in the test process.

A first worker raises, or is killed with SIGKILL, after the plan is journaled (before any
patch), after the patch (before the step is journaled), or during the first confirmation
check; sweepers then carry the rotation on. In every case: the ExternalSecret is annotated
with the rotation id by exactly one effective PATCH (a resumed worker finds the value there
and writes nothing, so ESO syncs once), the previous login keeps working until the consumer
is confirmed, and it is retired only then.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from azure.keyvault.secrets import SecretClient

from rotation.journal import Journal
from tests.protocol.conftest import LEASE_SECONDS, Worker, credential_of, only_rotation
from tests.support.kits import Kit, Secret
from twins.keyvault import KeyVaultTwin
from twins.kubernetes import KubernetesTwin
from twins.kubernetes.controllers import Controllers
from twins.kubernetes.rbac import Identity, rules_from_manifests

ROOT = Path(__file__).resolve().parents[2]
NS = "payments"
TOKEN = "rotator-sa-token"
USER = "system:serviceaccount:akv-rotator:akv-rotator"
KIT = "postgresql-alternating-users"
CASES = [pytest.param(KIT, point, mode, id=f"{point}-{mode}")
         for point in ("saved", "effect", "checked") for mode in ("kill", "raise")]


@pytest.fixture
def cluster(tmp_path: Path, twin: KeyVaultTwin, kv: SecretClient,
            worker_env: dict[str, str]) -> Iterator[tuple[KubernetesTwin, Controllers]]:
    rules = rules_from_manifests(list(yaml.safe_load_all((ROOT / "infra/k8s/rbac.yaml").read_text())))
    with KubernetesTwin(cert_dir=tmp_path / "k8s", tokens={TOKEN: Identity(USER, rules)},
                        crd_dir=None) as k8s:
        config = yaml.safe_load(k8s.kubeconfig(TOKEN).read_text())
        for entry in config["clusters"]:
            ca = Path(entry["cluster"].pop("certificate-authority")).read_bytes()
            entry["cluster"]["certificate-authority-data"] = base64.b64encode(ca).decode()
        kv.set_secret("kubeconfig-rke2", yaml.safe_dump(config))
        worker_env["ROTATOR_KUBECONFIG_SECRET"] = f"{twin.vault_name}/kubeconfig-rke2"
        worker_env["ROTATOR_PROPAGATION_POLL_SECONDS"] = "1"
        worker_env["ROTATOR_GRACE_HOURS"] = "48"  # confirmation, not the grace, must retire
        k8s.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
        k8s.put({"apiVersion": "external-secrets.io/v1", "kind": "ClusterSecretStore",
                 "metadata": {"name": "kv"},
                 "spec": {"provider": {"azurekv": {"vaultUrl": twin.url}}}})
        with Controllers(k8s, keyvault=twin, rollout_seconds=0.2) as controllers:
            yield k8s, controllers


def consumer(secret: str) -> list[dict[str, Any]]:
    es = {"apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
          "metadata": {"name": "api-db", "namespace": NS},
          "spec": {"secretStoreRef": {"name": "kv", "kind": "ClusterSecretStore"},
                   "target": {"name": "api-db"},
                   "data": [{"secretKey": "password",
                             "remoteRef": {"key": secret, "property": "password"}}]}}
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment",
                  "metadata": {"name": "api", "namespace": NS,
                               "annotations": {"reloader.stakater.com/auto": "true"}},
                  "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "api"}},
                           "template": {"metadata": {"labels": {"app": "api"}},
                                        "spec": {"containers": [{
                                            "name": "app", "image": "registry.example/app:1",
                                            "envFrom": [{"secretRef": {"name": "api-db"}}]}]}}}}
    return [es, deployment]


@pytest.mark.parametrize(("kit", "point", "mode"), CASES, indirect=["kit"])
def test_a_fault_in_propagation_never_retires_before_confirmation(
    kit: Kit, point: str, mode: str, worker_for: Callable[[Secret], Worker], kv: SecretClient,
    journal: Journal, twin: KeyVaultTwin, cluster: tuple[KubernetesTwin, Controllers],
) -> None:
    k8s, controllers = cluster
    secret = kit.make_secret()
    for obj in consumer(secret.name):
        k8s.put(obj)
    controllers.settle()
    worker = worker_for(secret)

    first = worker.deliver(fault=f"propagated:{point}:{mode}")
    assert first.returncode == (-9 if mode == "kill" else 0), first.stdout + first.stderr
    record = only_rotation(journal, twin, secret)
    assert record.propagation is not None and not record.finished
    assert kit.logs_in(secret.role, secret.password), "not retired before confirmation"
    if mode == "kill":
        time.sleep(LEASE_SECONDS + 0.3)  # the dead worker's lease must run out first

    give_up = time.monotonic() + 90
    while not (record := only_rotation(journal, twin, secret)).finished:
        assert time.monotonic() < give_up, record
        controllers.settle()
        confirmed = record.propagation is not None and not record.propagation.unconfirmed
        assert confirmed or kit.logs_in(secret.role, secret.password), "retired unconfirmed"
        time.sleep(1.0)
        sweep = worker.sweep()
        assert sweep.returncode == 0, sweep.stdout + sweep.stderr

    assert record.status == "succeeded" and record.propagation is not None
    [es] = record.propagation.consumers
    assert es.state == "confirmed" and record.propagation.warning is None
    retired_at = next(t.completed_at for t in record.steps if t.step == "retired")
    assert es.confirmed_at is not None and es.confirmed_at <= retired_at
    assert not kit.logs_in(secret.role, secret.password), "retired once confirmed"
    assert kit.logs_in(*credential_of(kv, secret.name))
    patches = [r for r in k8s.requests if r.method == "PATCH" and r.path.endswith("/api-db")]
    assert [r.status for r in patches] == [200], "one effective patch: ESO syncs once"
    annotations = k8s.get("external-secrets.io/v1", "ExternalSecret", NS, "api-db")["metadata"]["annotations"]
    assert annotations["external-secrets.io/force-sync"] == record.rotation_id
