"""Propagation end to end through the Functions app: Key Vault twin, PostgreSQL, and the
Kubernetes twin running ESO, Reloader and rollouts, reached with exactly infra/k8s/rbac.yaml.

A near-expiry event rotates a login; the rotation annotates exactly the ExternalSecrets that
read the secret, the twin's ESO syncs the new value into the Kubernetes Secret, Reloader rolls
the Deployment, the sweeper confirms each of those, and only then is the previous login retired.
"""

from __future__ import annotations

import base64
import json
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from azure.keyvault.secrets import SecretClient

from tests.integration.conftest import (
    App,
    DatabaseSecret,
    SecretFactory,
    near_expiry,
    versions_of,
)
from tests.integration.test_protocol import admin_secret
from tests.support.kits import Kit, make_kit
from tests.support.payloads import load_payload, retarget
from tests.support.postgres import PostgresServer
from tests.support.targets import DEFAULT_TARGET, pg_target
from tests.support.token_kits import TOKEN_KITS
from twins.eventgrid import EventGridTwin
from twins.jenkins import JenkinsTwin
from twins.keyvault import KeyVaultTwin
from twins.kubernetes import KubernetesTwin
from twins.kubernetes.controllers import Controllers
from twins.kubernetes.rbac import Identity, rules_from_manifests

ROOT = Path(__file__).resolve().parents[2]
NS = "payments"
TOKEN = "rotator-sa-token"
KUBECONFIG_SECRET = "kubeconfig-rke2"
ROTATOR_USER = "system:serviceaccount:akv-rotator:akv-rotator"


@dataclass
class Cluster:
    twin: KubernetesTwin
    controllers: Controllers

    def es(self, name: str, namespace: str = NS) -> dict[str, Any]:
        found = self.twin.get("external-secrets.io/v1", "ExternalSecret", namespace, name)
        assert found is not None
        return found

    def secret_data(self, name: str, namespace: str = NS) -> dict[str, str]:
        found = self.twin.get("v1", "Secret", namespace, name)
        assert found is not None
        return {k: base64.b64decode(v).decode() for k, v in found.get("data", {}).items()}

    def patches(self) -> list[str]:
        return [r.path for r in self.twin.requests if r.verb == "patch"]


@pytest.fixture
def cluster(tmp_path: Path, twin: KeyVaultTwin, kv: SecretClient,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[Cluster]:
    rules = rules_from_manifests(list(yaml.safe_load_all((ROOT / "infra/k8s/rbac.yaml").read_text())))
    identity = Identity(ROTATOR_USER, rules)
    with KubernetesTwin(cert_dir=tmp_path / "k8s", tokens={TOKEN: identity}, crd_dir=None) as k8s:
        kv.set_secret(KUBECONFIG_SECRET, inline_kubeconfig(k8s, TOKEN))
        monkeypatch.setenv("ROTATOR_KUBECONFIG_SECRET", f"{twin.vault_name}/{KUBECONFIG_SECRET}")
        monkeypatch.setenv("ROTATOR_PROPAGATION_POLL_SECONDS", "1")
        k8s.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
        k8s.put(store(twin.url))
        with Controllers(k8s, keyvault=twin, rollout_seconds=0.3) as controllers:
            yield Cluster(k8s, controllers)


def inline_kubeconfig(k8s: KubernetesTwin, token: str) -> str:
    """The twin's kubeconfig with its CA inline, as one kept in Key Vault must be."""
    config = yaml.safe_load(k8s.kubeconfig(token).read_text())
    for entry in config["clusters"]:
        path = entry["cluster"].pop("certificate-authority")
        entry["cluster"]["certificate-authority-data"] = base64.b64encode(
            Path(path).read_bytes()).decode()
    return yaml.safe_dump(config)


def store(vault_url: str, name: str = "kv") -> dict[str, Any]:
    return {"apiVersion": "external-secrets.io/v1", "kind": "ClusterSecretStore",
            "metadata": {"name": name},
            "spec": {"provider": {"azurekv": {"vaultUrl": vault_url, "authType": "WorkloadIdentity"}}}}


def external_secret(name: str, key: str, target: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"secretStoreRef": {"name": "kv", "kind": "ClusterSecretStore"},
                     "refreshInterval": "1h", "target": {"name": target},
                     "data": [{"secretKey": "password",
                               "remoteRef": {"key": key, "property": "password"}}], **spec}}


def deployment(name: str, secret: str, **annotations: str) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": NS,
                         "annotations": annotations or {"reloader.stakater.com/auto": "true"}},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{
                                      "name": "app", "image": "registry.example/app:1",
                                      "envFrom": [{"secretRef": {"name": secret}}]}]}}}}


def consumers_of(cluster: Cluster, db: DatabaseSecret, other: str) -> None:
    """The secret's consumer with a Reloader-watched Deployment, and one that reads another."""
    cluster.twin.put(external_secret("api-db", db.name, "api-db"))
    cluster.twin.put(deployment("api", "api-db"))
    cluster.twin.put(external_secret("other", other, "other"))
    cluster.controllers.settle()


def sweep_until(app: App, done: Callable[[], bool], cluster: Cluster, limit: float = 30.0) -> None:
    """Run the sweeper (as its timer would) until ``done``; the twins settle in between."""
    give_up = time.monotonic() + limit
    while not done():
        assert time.monotonic() < give_up, "propagation never settled"
        cluster.controllers.settle()
        time.sleep(1.0)  # ROTATOR_PROPAGATION_POLL_SECONDS
        app.sweep()


def history(app: App, rotation_id: str) -> dict[str, Any]:
    status, body = app.get(f"rotations/{rotation_id}", {"id": rotation_id})
    assert status == 200, body
    return body


def latest_rotation(app: App, secret: str) -> dict[str, Any]:
    status, body = app.get(f"secrets/{secret}/rotations", {"name": secret})
    assert status == 200, body
    return body["rotations"][0]


@pytest.fixture
def alternating(postgres: PostgresServer, kv: SecretClient, db_secret: SecretFactory,
                declare_targets: Callable[..., None]) -> Callable[..., DatabaseSecret]:
    """A secret on an alternating-users target: its previous login waits to be retired."""
    admin_secret(postgres, kv, "pg-admin-alt")
    declare_targets(pg_alt=pg_target(postgres, admin="pg-admin-alt",
                                     strategies=["alternating-users"]))

    def make(**tags: str) -> DatabaseSecret:
        return db_secret(tags={"rotator-target": "pg-alt", **tags})

    return make


def test_near_expiry_to_rolled_deployment_then_retirement(
        app: App, cluster: Cluster, alternating: Callable[..., DatabaseSecret], twin: KeyVaultTwin,
        kv: SecretClient, postgres: PostgresServer) -> None:
    db = alternating(**{"rotator-grace-hours": "48"})
    other = kv.set_secret("unrelated", json.dumps({"password": "x"}))
    consumers_of(cluster, db, other.name or "")
    generation = cluster.twin.get("apps/v1", "Deployment", NS, "api")["metadata"]["generation"]

    app.deliver(near_expiry(twin, db.name, db.version))

    rotation = latest_rotation(app, db.name)
    assert rotation["status"] == "awaiting-propagation", rotation
    patched = cluster.patches()
    assert patched and all("/externalsecrets/api-db" in p for p in patched), patched
    assert cluster.es("api-db")["metadata"]["annotations"]["external-secrets.io/force-sync"] \
        == rotation["rotationId"]
    assert "external-secrets.io/force-sync" not in cluster.es("other")["metadata"].get("annotations", {})

    sweep_until(app, lambda: latest_rotation(app, db.name)["status"] == "succeeded", cluster)

    body = history(app, rotation["rotationId"])
    new_login = json.loads(kv.get_secret(db.name).value or "{}")
    assert cluster.secret_data("api-db")["password"] == new_login["password"]
    deployment_now = cluster.twin.get("apps/v1", "Deployment", NS, "api")
    assert deployment_now["metadata"]["generation"] > generation
    [consumer] = body["propagation"]["consumers"]
    assert (consumer["namespace"], consumer["kind"], consumer["name"], consumer["verdict"]) == \
        (NS, "ExternalSecret", "api-db", "annotate")
    assert consumer["state"] == "confirmed" and consumer["patchedAt"] and consumer["syncedAt"]
    assert consumer["rolloutDoneAt"] and consumer["workloads"][0]["state"] == "rolled-out"
    assert body["propagation"]["warning"] is None
    listed = latest_rotation(app, db.name)["propagation"]  # a list shows counts, not consumers
    assert listed == {"clusters": [KUBECONFIG_SECRET], "errors": [], "untracked": 0,
                      "warning": None, "consumers": 1, "confirmed": 1}
    # Retired on confirmation, long before the 48-hour grace: the old login is locked.
    assert not postgres.can_login(db.role, db.password)
    assert postgres.can_login(new_login["username"], new_login["password"])
    ours = [r for r in cluster.twin.requests if r.user == ROTATOR_USER]
    assert ours and not any("secrets" in r.path.split("/") for r in ours), "no Secret read"
    refused = {(r.verb, r.path) for r in ours if r.status >= 400}
    assert refused <= {("list", "/api/v1/namespaces")}, refused  # optional, outside the role


def test_a_rollout_that_never_completes_holds_retirement_until_the_maximum_grace(
        app: App, cluster: Cluster, alternating: Callable[..., DatabaseSecret], twin: KeyVaultTwin,
        kv: SecretClient, postgres: PostgresServer) -> None:
    db = alternating(**{"rotator-grace-hours": "48", "rotator-max-grace-hours": "0.002"})  # 7 s
    cluster.twin.put(external_secret("api-db", db.name, "api-db"))
    cluster.twin.put(deployment("api", "api-db"))
    pinned = external_secret("batch-db", db.name, "batch-db")
    pinned["spec"]["data"][0]["remoteRef"]["version"] = db.version
    cluster.twin.put(pinned)
    cluster.controllers.settle()
    cluster.controllers.fail_rollout("Deployment", NS, "api")

    app.deliver(near_expiry(twin, db.name, db.version))
    rotation_id = latest_rotation(app, db.name)["rotationId"]
    cluster.controllers.settle()
    app.sweep()
    body = history(app, rotation_id)
    assert body["status"] == "awaiting-propagation", body
    states = {c["name"]: (c["verdict"], c["state"]) for c in body["propagation"]["consumers"]}
    assert states == {"api-db": ("annotate", "synced"), "batch-db": ("report", "reported")}
    assert postgres.can_login(db.role, db.password), "not retired while consumers are unconfirmed"
    assert [p for p in cluster.patches() if "batch-db" in p] == [], "a pinned ES is only reported"

    sweep_until(app, lambda: history(app, rotation_id)["status"] == "succeeded", cluster)

    body = history(app, rotation_id)
    warning = body["propagation"]["warning"]
    assert warning.startswith("retired after the maximum wait of 0.002 h: without confirmation from:")
    assert f"{KUBECONFIG_SECRET}:{NS}/ExternalSecret/api-db" in warning
    assert f"{KUBECONFIG_SECRET}:{NS}/ExternalSecret/batch-db" in warning
    [api] = [c for c in body["propagation"]["consumers"] if c["name"] == "api-db"]
    assert api["workloads"][0]["state"] == "failed" and api["rolloutDoneAt"] is None
    assert "progress deadline" in api["workloads"][0]["reason"]
    assert not postgres.can_login(db.role, db.password), "retired at the maximum grace"


def test_an_unreachable_cluster_parks_the_rotation_until_it_answers(
        app: App, cluster: Cluster, alternating: Callable[..., DatabaseSecret], twin: KeyVaultTwin,
        postgres: PostgresServer) -> None:
    db = alternating(**{"rotator-grace-hours": "48"})
    cluster.twin.put(external_secret("api-db", db.name, "api-db"))
    cluster.controllers.settle()
    cluster.twin.inject(status=503, count=10_000)

    app.deliver(near_expiry(twin, db.name, db.version))
    body = latest_rotation(app, db.name)
    assert (body["status"], body["step"]) == ("awaiting-propagation", "propagated"), body
    assert body["lastError"].startswith(f"clusters unreachable: {KUBECONFIG_SECRET}: ")
    assert "HTTP 503" in body["lastError"]
    first_retry = body["nextAttemptAt"]
    assert first_retry is not None
    app.sweep()  # not due yet (back-off): nothing changes
    assert latest_rotation(app, db.name)["nextAttemptAt"] == first_retry
    assert postgres.can_login(db.role, db.password)

    cluster.twin.clear_faults()
    sweep_until(app, lambda: latest_rotation(app, db.name)["status"] == "succeeded", cluster)
    assert not postgres.can_login(db.role, db.password)


def test_a_conflicting_patch_is_retried_on_a_fresh_read(
        app: App, cluster: Cluster, alternating: Callable[..., DatabaseSecret],
        twin: KeyVaultTwin) -> None:
    db = alternating()
    cluster.twin.put(external_secret("api-db", db.name, "api-db"))
    cluster.controllers.settle()
    cluster.twin.inject(status=409, count=1, method="PATCH")

    app.deliver(near_expiry(twin, db.name, db.version))
    rotation = latest_rotation(app, db.name)
    statuses = [r.status for r in cluster.twin.requests if r.method == "PATCH"]
    assert statuses == [409, 200], statuses
    assert cluster.es("api-db")["metadata"]["annotations"]["external-secrets.io/force-sync"] \
        == rotation["rotationId"]


def test_a_cluster_external_secret_is_annotated_instead_of_its_children(
        app: App, cluster: Cluster, db_secret: SecretFactory, twin: KeyVaultTwin) -> None:
    db = db_secret()
    ces = {"apiVersion": "external-secrets.io/v1", "kind": "ClusterExternalSecret",
           "metadata": {"name": "shared-db"},
           "spec": {"namespaces": [NS], "externalSecretName": "shared-db",
                    "externalSecretSpec": external_secret("x", db.name, "shared-db")["spec"]}}
    cluster.twin.put(ces)
    parent = cluster.twin.get("external-secrets.io/v1", "ClusterExternalSecret", "", "shared-db")
    child = external_secret("shared-db", db.name, "shared-db")
    child["metadata"]["ownerReferences"] = [{
        "apiVersion": "external-secrets.io/v1", "kind": "ClusterExternalSecret", "name": "shared-db",
        "uid": parent["metadata"]["uid"], "controller": True}]
    cluster.twin.put(child)
    cluster.controllers.settle()

    app.deliver(near_expiry(twin, db.name, db.version))

    patched = cluster.patches()
    assert patched == ["/apis/external-secrets.io/v1/clusterexternalsecrets/shared-db"], patched
    rotation = history(app, latest_rotation(app, db.name)["rotationId"])
    verdicts = {(c["kind"], c["verdict"], c["patchedVia"]) for c in rotation["propagation"]["consumers"]}
    assert verdicts == {("ClusterExternalSecret", "annotate", None),
                        ("ExternalSecret", "annotate-parent", "shared-db")}


def test_a_version_written_by_hand_is_propagated_alone(
        app: App, cluster: Cluster, db_secret: SecretFactory, twin: KeyVaultTwin,
        kv: SecretClient, postgres: PostgresServer) -> None:
    db = db_secret()
    cluster.twin.put(external_secret("api-db", db.name, "api-db"))
    cluster.twin.put(deployment("api", "api-db"))
    cluster.controllers.settle()
    postgres.create_role(db.role, "Hand-Set-Passw0rd-1")  # an operator resets it by hand
    by_hand = kv.set_secret(db.name, json.dumps({"username": db.role, "password": "Hand-Set-Passw0rd-1"}),
                            content_type="application/json",
                            tags={"rotator-target": DEFAULT_TARGET, "owner": "platform-team"})

    app.deliver(retarget(load_payload("new_version_doc_sample"), vault=twin.vault_name,
                         secret=db.name, version=by_hand.properties.version or ""))

    record = latest_rotation(app, db.name)
    assert (record["purpose"], record["status"]) == ("propagation", "awaiting-propagation"), record
    sweep_until(app, lambda: latest_rotation(app, db.name)["status"] == "succeeded", cluster)
    assert cluster.secret_data("api-db")["password"] == "Hand-Set-Passw0rd-1"
    assert len(versions_of(kv, db.name)) == 2, "no version written by the rotator"
    body = history(app, record["rotationId"])
    assert body["propagation"]["consumers"][0]["state"] == "confirmed"
    assert body["newVersion"] == by_hand.properties.version and body["pendingVersion"] is None
    assert postgres.can_login(db.role, "Hand-Set-Passw0rd-1"), "nothing was rotated"


def test_a_new_version_with_the_same_value_propagates_nothing_and_blocks_no_rotation(
        app: App, cluster: Cluster, db_secret: SecretFactory, twin: KeyVaultTwin,
        kv: SecretClient) -> None:
    """What ``akv-rotator onboard`` writes: the same value with new tags. A force-sync would
    change no Secret, and a propagation record would hold the next rotation back."""
    db = db_secret()
    cluster.twin.put(external_secret("api-db", db.name, "api-db"))
    cluster.controllers.settle()
    time.sleep(1.1)  # Key Vault's creation times are whole seconds: one later, the order is known
    retagged = kv.set_secret(db.name, json.dumps({"username": db.role, "password": db.password}),
                             content_type="application/json",
                             tags={"rotator-target": DEFAULT_TARGET, "rotator-dr": "true"})

    app.deliver(retarget(load_payload("new_version_doc_sample"), vault=twin.vault_name,
                         secret=db.name, version=retagged.properties.version or ""))

    assert cluster.patches() == [], "nothing to carry into the cluster"
    status, rotations = app.get(f"secrets/{db.name}/rotations", {"name": db.name})
    assert status == 200 and rotations["rotations"] == []
    assert any("holds the same value as the one before" in line for line in app.said.log_lines)
    status, rotated = app.post_rotate(db.name)
    assert (status, rotated["status"]) == (200, "succeeded"), "no record holds the rotation back"


def test_a_same_value_version_in_the_same_second_is_propagated_to_be_safe(
        app: App, cluster: Cluster, db_secret: SecretFactory, twin: KeyVaultTwin,
        kv: SecretClient) -> None:
    """Two versions in one second: Key Vault's times cannot say which came first, so the
    rotator cannot know the value is unchanged, and propagates (the harmless side)."""
    db = db_secret()
    cluster.twin.put(external_secret("api-db", db.name, "api-db"))
    cluster.controllers.settle()
    for _ in range(5):  # a write lands in the next second now and then: write another
        created = kv.get_secret(db.name).properties.created_on
        retagged = kv.set_secret(db.name, json.dumps({"username": db.role, "password": db.password}),
                                 content_type="application/json",
                                 tags={"rotator-target": DEFAULT_TARGET})
        if retagged.properties.created_on == created:
            break
    assert retagged.properties.created_on == created, "two versions in one second"
    app.deliver(retarget(load_payload("new_version_doc_sample"), vault=twin.vault_name,
                         secret=db.name, version=retagged.properties.version or ""))
    assert latest_rotation(app, db.name)["purpose"] == "propagation"


@pytest.fixture
def jenkins_twin(tmp_path: Path) -> Iterator[JenkinsTwin]:
    with JenkinsTwin(cert_dir=tmp_path / "jenkins") as running:
        yield running


@pytest.fixture(params=["jenkins-overlap", "netbox-overlap"])
def token_kit(request: pytest.FixtureRequest, kv: SecretClient,
              declare_targets: Callable[..., None]) -> Kit:
    """A Jenkins or NetBox token kit, declared as the operator's target."""
    kit = make_kit(request.param, kv, request.getfixturevalue(TOKEN_KITS[request.param].server))
    declare_targets(**{kit.target.replace("-", "_"): kit.declaration()})
    return kit


def test_a_rotated_api_token_reaches_its_workload_before_the_old_one_is_revoked(
        app: App, cluster: Cluster, token_kit: Kit, twin: KeyVaultTwin, kv: SecretClient) -> None:
    secret = token_kit.make_secret()
    kv.update_secret_properties(secret.name, secret.version, tags={
        "rotator-target": token_kit.target, "rotator-grace-hours": "48"})
    token_es = external_secret("ci-token", secret.name, "ci-token")
    token_es["spec"]["data"][0] = {"secretKey": "token",
                                   "remoteRef": {"key": secret.name, "property": "token"}}
    cluster.twin.put(token_es)
    cluster.twin.put(deployment("ci-agent", "ci-token"))
    cluster.controllers.settle()

    app.deliver(near_expiry(twin, secret.name, secret.version))
    assert latest_rotation(app, secret.name)["status"] == "awaiting-propagation"
    assert token_kit.logs_in(secret.role, secret.password), "the old token works until confirmed"

    sweep_until(app, lambda: latest_rotation(app, secret.name)["status"] == "succeeded", cluster)
    new = json.loads(kv.get_secret(secret.name).value or "{}")
    assert cluster.secret_data("ci-token")["token"] == new["token"]
    assert token_kit.logs_in(secret.role, new["token"])
    assert not token_kit.logs_in(secret.role, secret.password), "revoked once confirmed"
    body = history(app, latest_rotation(app, secret.name)["rotationId"])
    assert [c["state"] for c in body["propagation"]["consumers"]] == ["confirmed"]


def test_several_clusters_one_unreachable_until_the_maximum_grace(
        app: App, cluster: Cluster, alternating: Callable[..., DatabaseSecret], twin: KeyVaultTwin,
        kv: SecretClient, postgres: PostgresServer, monkeypatch: pytest.MonkeyPatch) -> None:
    config = yaml.safe_load(inline_kubeconfig(cluster.twin, TOKEN))
    with socket.socket() as closed:  # a port nobody listens on: the cluster is down
        closed.bind(("127.0.0.1", 0))
        config["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{closed.getsockname()[1]}"
    kv.set_secret("kubeconfig-edge", yaml.safe_dump(config))
    monkeypatch.setenv("ROTATOR_KUBECONFIG_SECRET",
                       f"{twin.vault_name}/{KUBECONFIG_SECRET},{twin.vault_name}/kubeconfig-edge")
    db = alternating(**{"rotator-grace-hours": "48", "rotator-max-grace-hours": "0.002"})
    cluster.twin.put(external_secret("api-db", db.name, "api-db"))
    cluster.twin.put(deployment("api", "api-db"))
    cluster.controllers.settle()

    app.deliver(near_expiry(twin, db.name, db.version))
    body = latest_rotation(app, db.name)
    assert body["status"] == "awaiting-propagation" and "kubeconfig-edge" in body["lastError"]
    assert cluster.es("api-db")["metadata"]["annotations"]["external-secrets.io/force-sync"] \
        == body["rotationId"], "the reachable cluster is not held up by the other"
    assert postgres.can_login(db.role, db.password)

    sweep_until(app, lambda: latest_rotation(app, db.name)["status"] == "succeeded", cluster)
    record = history(app, body["rotationId"])
    assert record["propagation"]["clusters"] == [KUBECONFIG_SECRET]
    assert record["propagation"]["warning"].startswith(
        "retired after the maximum wait of 0.002 h: clusters unreachable: kubeconfig-edge: ")
    assert [c["state"] for c in record["propagation"]["consumers"]] == ["confirmed"]
    assert not postgres.can_login(db.role, db.password)


def test_rotation_events_announce_propagation_retirement_and_success(
        app: App, cluster: Cluster, alternating: Callable[..., DatabaseSecret], twin: KeyVaultTwin,
        topic: EventGridTwin) -> None:
    db = alternating(**{"rotator-grace-hours": "48"})
    cluster.twin.put(external_secret("api-db", db.name, "api-db"))
    cluster.twin.put(deployment("api", "api-db"))
    cluster.controllers.settle()
    app.deliver(near_expiry(twin, db.name, db.version))
    assert topic.published() == [], "nothing to announce until the consumers confirm"
    sweep_until(app, lambda: latest_rotation(app, db.name)["status"] == "succeeded", cluster)
    events = [p.event for p in topic.published()]
    assert [e["type"].rsplit(".", 1)[1] for e in events] == ["propagated", "retired", "succeeded"]
    assert events[0]["data"]["propagation"] == {"consumers": 1, "confirmed": 1, "warning": None}
