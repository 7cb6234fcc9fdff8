"""``rotation.propagation.cluster`` against the Kubernetes twin, over real HTTPS.

The rotator's token has exactly the rules of infra/k8s/rbac.yaml, and its cluster is built
the way production builds it: from a kubeconfig's text with the CA inline. Faults come from
the twin (409s, 5xx, a lost answer, a late one); an unreachable cluster is a closed port.
The ESO CRDs (``AKV_ROTATOR_ESO_CRDS``, default ../shared/eso-crds) validate the ESO objects
when present; without them the twin serves the objects unvalidated and every test still runs.
"""

from __future__ import annotations

import base64
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
import yaml

from rotation.propagation import api
from rotation.propagation.cluster import (
    FORCE_SYNC_ATTEMPTS,
    Cluster,
    ClusterError,
    cluster_from_kubeconfig_text,
    cluster_in_cluster,
)
from rotation.propagation.confirm import FORCE_SYNC
from tests.twins.k8s_helpers import NS, cluster_store, external_secret, workload
from twins.kubernetes import ESO_GROUP, Identity, KubernetesTwin, eso_crd_dir, rules_from_manifests

ROOT = Path(__file__).resolve().parents[2]
RBAC = rules_from_manifests(list(yaml.safe_load_all((ROOT / "infra/k8s/rbac.yaml").read_text())))
SERVICE_ACCOUNT = "system:serviceaccount:akv-rotator:akv-rotator"
ROTATOR = "rotator-token-7f3c9a1e5b"
NOBODY = "no-role-token-2d8e4f6a0c"
V1, V1BETA1 = f"{ESO_GROUP}/v1", f"{ESO_GROUP}/v1beta1"
ES, CES = "ExternalSecret", "ClusterExternalSecret"
TIMEOUT = 5.0


crd_dir = eso_crd_dir


@pytest.fixture(autouse=True)
def no_proxy_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The client honours HTTPS_PROXY; a loopback twin is never behind one."""
    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)


def seed(twin: KubernetesTwin, api_version: str = V1) -> None:
    store = cluster_store("https://kv-prod.vault.azure.net")
    store["apiVersion"] = api_version
    twin.put(store)
    secret = external_secret("db")
    secret["apiVersion"] = api_version
    twin.put(secret)
    twin.put({
        "apiVersion": api_version, "kind": CES, "metadata": {"name": "shared"},
        "spec": {"externalSecretSpec": external_secret("x")["spec"], "namespaces": [NS]},
    })
    status = {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "availableReplicas": 1}
    twin.put({**workload("web", template_annotations={"reloader.stakater.com/auto": "true"}),
              "status": status})
    twin.put({**workload("cache", "StatefulSet"), "status": {"observedGeneration": 1, "replicas": 1}})
    twin.put({**workload("agent", "DaemonSet"), "status": {
        "observedGeneration": 1, "currentNumberScheduled": 1, "desiredNumberScheduled": 1,
        "numberMisscheduled": 0, "numberReady": 1}})


@pytest.fixture
def twin(tmp_path: Path) -> Iterator[KubernetesTwin]:
    tokens = {ROTATOR: Identity(SERVICE_ACCOUNT, RBAC), NOBODY: Identity("system:serviceaccount:x:nobody")}
    with KubernetesTwin(cert_dir=tmp_path / "k8s", tokens=tokens, crd_dir=crd_dir()) as running:
        seed(running)
        running.requests.clear()
        yield running


def kubeconfig(twin: KubernetesTwin, token: str, server: str | None = None) -> dict[str, Any]:
    """The twin's kubeconfig for ``token`` with its CA inline, as a Key Vault secret would hold it."""
    config: dict[str, Any] = json.loads(twin.kubeconfig(token).read_text())
    cluster = config["clusters"][0]["cluster"]
    cluster["certificate-authority-data"] = base64.b64encode(
        Path(cluster.pop("certificate-authority")).read_bytes()).decode()
    if server is not None:
        cluster["server"] = server
    return config


def open_cluster(twin: KubernetesTwin, token: str = ROTATOR, *, timeout: float = TIMEOUT,
                 server: str | None = None) -> Cluster:
    return cluster_from_kubeconfig_text("twin", json.dumps(kubeconfig(twin, token, server)),
                                        timeout_seconds=timeout)


@pytest.fixture
def cluster(twin: KubernetesTwin) -> Iterator[Cluster]:
    opened = open_cluster(twin)
    yield opened
    opened.close()


def annotation(twin: KubernetesTwin, api_version: str, kind: str, namespace: str, name: str) -> str | None:
    obj = twin.get(api_version, kind, namespace, name)
    assert obj is not None
    value = obj["metadata"].get("annotations", {}).get(FORCE_SYNC)
    return value if isinstance(value, str) else None


def methods(twin: KubernetesTwin) -> list[str]:
    return [r.method for r in twin.requests]


# -- the project's least privilege is enough, and never reads a Secret --------------------------


def test_every_call_works_with_exactly_the_projects_rbac(twin: KubernetesTwin, cluster: Cluster) -> None:
    found = {(o["kind"], o["metadata"]["name"]) for o in cluster.eso_objects()}  # type: ignore[index]
    assert {(ES, "db"), (CES, "shared"), ("ClusterSecretStore", "vault")} <= found
    assert not any(kind == "Namespace" for kind, _ in found), "the role does not read Namespaces"

    obj = cluster.get(V1, ES, NS, "db")
    assert obj is not None and (obj["apiVersion"], obj["kind"]) == (V1, ES)
    assert cluster.force_sync(V1, ES, NS, "db", "rotation-1") is not None
    assert cluster.force_sync(V1, CES, "", "shared", "rotation-1") is not None
    assert len(cluster.workloads(NS)) == 3

    requests = list(twin.requests)
    assert {r.user for r in requests} == {SERVICE_ACCOUNT}
    assert {r.verb for r in requests} <= {"get", "list", "patch"}
    assert all(r.status == 200 or r.path == "/api/v1/namespaces" for r in requests), requests
    assert not any("secrets" in r.path.split("/") for r in requests), "a Secret was read"


# -- force_sync ----------------------------------------------------------------------------------


def test_force_sync_sets_the_annotation_with_a_merge_patch_once_per_value(
        twin: KubernetesTwin, cluster: Cluster) -> None:
    patched = cluster.force_sync(V1, ES, NS, "db", "rotation-1")
    assert patched is not None and patched["metadata"]["annotations"][FORCE_SYNC] == "rotation-1"
    assert (patched["apiVersion"], patched["kind"]) == (V1, ES)
    assert annotation(twin, V1, ES, NS, "db") == "rotation-1"
    patch = next(r for r in twin.requests if r.method == "PATCH")
    assert patch.path == f"/apis/{ESO_GROUP}/v1/namespaces/{NS}/externalsecrets/db"
    assert patch.content_type.split(";")[0] == "application/merge-patch+json"

    again = cluster.force_sync(V1, ES, NS, "db", "rotation-1")
    assert again is not None and again["metadata"]["annotations"][FORCE_SYNC] == "rotation-1"
    assert methods(twin).count("PATCH") == 1, "the same value is not sent twice"

    assert cluster.force_sync(V1, ES, NS, "db", "rotation-2") is not None
    assert methods(twin).count("PATCH") == 2
    assert annotation(twin, V1, ES, NS, "db") == "rotation-2"


def test_force_sync_of_a_cluster_external_secret(twin: KubernetesTwin, cluster: Cluster) -> None:
    patched = cluster.force_sync(V1, CES, "", "shared", "rotation-1")
    assert patched is not None and (patched["apiVersion"], patched["kind"]) == (V1, CES)
    assert annotation(twin, V1, CES, "", "shared") == "rotation-1"
    patch = next(r for r in twin.requests if r.method == "PATCH")
    assert patch.path == f"/apis/{ESO_GROUP}/v1/clusterexternalsecrets/shared"
    assert patch.content_type.split(";")[0] == "application/merge-patch+json"


def test_a_conflict_is_retried_after_a_fresh_read(twin: KubernetesTwin, cluster: Cluster) -> None:
    twin.inject(status=409, method="PATCH", count=2)
    assert cluster.force_sync(V1, ES, NS, "db", "rotation-1") is not None
    assert methods(twin) == ["GET", "PATCH"] * 3
    assert [r.status for r in twin.requests if r.method == "PATCH"] == [409, 409, 200]
    assert annotation(twin, V1, ES, NS, "db") == "rotation-1"


def test_a_write_between_the_read_and_the_patch_is_a_real_conflict_and_kept(
        twin: KubernetesTwin, cluster: Cluster) -> None:
    """The patch carries the read's resourceVersion, so a write in between is not overwritten."""
    twin.inject(status=200, delay_seconds=2, method="PATCH")  # holds the first PATCH back
    outcome: list[object] = []
    worker = threading.Thread(target=lambda: outcome.append(
        cluster.force_sync(V1, ES, NS, "db", "rotation-1")))
    worker.start()
    deadline = time.monotonic() + 10
    while twin.faults and time.monotonic() < deadline:  # the PATCH has arrived once consumed
        time.sleep(0.01)
    assert not twin.faults
    changed = twin.get(V1, ES, NS, "db")
    assert changed is not None
    changed["metadata"].setdefault("labels", {})["team"] = "a"
    twin.put(changed)  # someone else's write, while the PATCH waits
    worker.join(timeout=30)

    assert outcome and outcome[0] is not None
    assert [r.status for r in twin.requests if r.method == "PATCH"] == [409, 200]
    after = twin.get(V1, ES, NS, "db")
    assert after is not None
    assert after["metadata"]["labels"]["team"] == "a"
    assert after["metadata"]["annotations"][FORCE_SYNC] == "rotation-1"


def test_conflicts_that_never_end_are_an_error_after_five_tries(
        twin: KubernetesTwin, cluster: Cluster) -> None:
    twin.inject(status=409, method="PATCH", count=50)
    with pytest.raises(ClusterError) as raised:
        cluster.force_sync(V1, ES, NS, "db", "rotation-1")
    assert raised.value.status == 409
    assert methods(twin).count("PATCH") == FORCE_SYNC_ATTEMPTS == 5
    message = str(raised.value)
    assert f"patch externalsecrets.{ESO_GROUP}/v1 {NS}/db on cluster 'twin'" in message
    assert "409" in message and "5 tries" in message


def test_a_patch_whose_answer_was_lost_is_not_sent_again(twin: KubernetesTwin, cluster: Cluster) -> None:
    """A resumed rotation finds its own value on the object and does not make ESO sync twice."""
    twin.inject(status=0, method="PATCH", after_processing=True)  # landed, answer dropped
    with pytest.raises(ClusterError) as raised:
        cluster.force_sync(V1, ES, NS, "db", "rotation-1")
    assert raised.value.status is None and "no HTTP status" in str(raised.value)
    assert annotation(twin, V1, ES, NS, "db") == "rotation-1"

    assert cluster.force_sync(V1, ES, NS, "db", "rotation-1") is not None
    assert methods(twin).count("PATCH") == 1


# -- objects that are not there, and v1beta1 -----------------------------------------------------


def test_missing_objects_are_none(twin: KubernetesTwin, cluster: Cluster) -> None:
    assert cluster.get(V1, ES, NS, "gone") is None
    assert cluster.get(V1, CES, "", "gone") is None
    assert cluster.force_sync(V1, ES, NS, "gone", "rotation-1") is None
    assert cluster.force_sync(V1, CES, "", "gone", "rotation-1") is None
    assert "PATCH" not in methods(twin)


def test_an_object_deleted_between_read_and_patch_is_none(twin: KubernetesTwin, cluster: Cluster) -> None:
    twin.inject(status=404, method="PATCH")
    assert cluster.force_sync(V1, ES, NS, "db", "rotation-1") is None


def test_a_cluster_serving_only_v1beta1(tmp_path: Path) -> None:
    tokens = {ROTATOR: Identity(SERVICE_ACCOUNT, RBAC)}
    with KubernetesTwin(cert_dir=tmp_path / "k8s", tokens=tokens, crd_dir=crd_dir(),
                        eso_versions=("v1beta1",)) as twin:
        seed(twin, V1BETA1)
        opened = open_cluster(twin)
        try:
            listed = [o for o in opened.eso_objects() if o["kind"] == ES]
            assert [o["apiVersion"] for o in listed] == [V1BETA1]
            obj = opened.get(V1BETA1, ES, NS, "db")
            assert obj is not None and obj["apiVersion"] == V1BETA1
            assert opened.get(V1, ES, NS, "db") is None, "v1 is not served: nothing there"
            assert opened.force_sync(V1BETA1, ES, NS, "db", "rotation-1") is not None
            assert annotation(twin, V1BETA1, ES, NS, "db") == "rotation-1"
            patch = next(r for r in twin.requests if r.method == "PATCH")
            assert patch.path == f"/apis/{ESO_GROUP}/v1beta1/namespaces/{NS}/externalsecrets/db"
        finally:
            opened.close()


def test_a_reference_that_is_not_an_eso_object_is_the_callers_mistake(cluster: Cluster) -> None:
    with pytest.raises(ValueError, match="apiVersion"):
        cluster.get("apps/v1", ES, NS, "db")
    with pytest.raises(ValueError, match="kind"):
        cluster.get(V1, "Secret", NS, "db")
    with pytest.raises(ValueError, match="cluster-scoped"):
        cluster.get(V1, CES, NS, "shared")
    with pytest.raises(ValueError, match="namespaced"):
        cluster.force_sync(V1, ES, "", "db", "rotation-1")
    with pytest.raises(ValueError, match="force_sync"):
        cluster.force_sync(V1, "SecretStore", NS, "vault", "rotation-1")


# -- workloads ------------------------------------------------------------------------------------


def test_workloads_are_the_apis_json_with_kind_and_api_version(cluster: Cluster) -> None:
    found = {w["kind"]: w for w in cluster.workloads(NS)}
    assert set(found) == {"Deployment", "StatefulSet", "DaemonSet"}
    assert {(w["apiVersion"], w["metadata"]["name"]) for w in found.values()} == {
        ("apps/v1", "web"), ("apps/v1", "cache"), ("apps/v1", "agent")}
    web = found["Deployment"]
    assert web["status"]["observedGeneration"] == 1
    assert web["status"]["updatedReplicas"] == 1
    assert web["spec"]["template"]["metadata"]["annotations"] == {"reloader.stakater.com/auto": "true"}
    assert "observed_generation" not in json.dumps(found), "snake_case leaked from the client's models"
    json.dumps(found)  # plain JSON types only
    assert cluster.workloads("kube-system") == []


def test_a_workload_the_clients_model_refuses_is_a_cluster_error(twin: KubernetesTwin,
                                                                  cluster: Cluster) -> None:
    """The API server always sends ``status.replicas``; an answer without it is not the API's."""
    twin.put({**workload("odd", "StatefulSet"), "status": {"observedGeneration": 1}})
    with pytest.raises(ClusterError) as raised:
        cluster.workloads(NS)
    assert str(raised.value).startswith(
        f"list statefulsets.apps/v1 in {NS} on cluster 'twin': the client could not use the answer")


# -- failures name the call, the cluster and the status -------------------------------------------


def test_a_token_without_the_role_is_forbidden(twin: KubernetesTwin,
                                               caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    opened = open_cluster(twin, NOBODY)
    calls: list[tuple[Callable[[], object], str]] = [
        (lambda: opened.get(V1, ES, NS, "db"), f"get externalsecrets.{ESO_GROUP}/v1 {NS}/db"),
        (lambda: opened.force_sync(V1, ES, NS, "db", "r"), f"get externalsecrets.{ESO_GROUP}/v1 {NS}/db"),
        (opened.eso_objects, f"list externalsecrets.{ESO_GROUP}/v1 (all namespaces)"),
        (lambda: opened.workloads(NS), f"list deployments.apps/v1 in {NS}"),
    ]
    for call, named in calls:
        with pytest.raises(ClusterError) as raised:
            call()
        assert raised.value.status == 403
        assert isinstance(raised.value, api.ClusterError), "the propagation port's error"
        assert f"{named} on cluster 'twin': HTTP 403" in str(raised.value)
        assert NOBODY not in str(raised.value)
    assert NOBODY not in caplog.text and ROTATOR not in caplog.text
    opened.close()


def test_an_unknown_token_is_unauthorized(twin: KubernetesTwin) -> None:
    config = kubeconfig(twin, ROTATOR)
    config["users"][0]["user"]["token"] = "not-a-known-token"
    opened = cluster_from_kubeconfig_text("twin", json.dumps(config))
    with pytest.raises(ClusterError) as raised:
        opened.get(V1, ES, NS, "db")
    assert raised.value.status == 401 and "HTTP 401" in str(raised.value)
    assert "not-a-known-token" not in str(raised.value)
    opened.close()


@pytest.mark.parametrize(("path", "call", "named"), [
    ("/externalsecrets/db", lambda c: c.get(V1, ES, NS, "db"), f"get externalsecrets.{ESO_GROUP}/v1 {NS}/db"),
    ("/deployments", lambda c: c.workloads(NS), f"list deployments.apps/v1 in {NS}"),
    ("/statefulsets", lambda c: c.workloads(NS), f"list statefulsets.apps/v1 in {NS}"),
    ("/clusterexternalsecrets", lambda c: c.eso_objects(),
     f"list clusterexternalsecrets.{ESO_GROUP}/v1 (all namespaces)"),
], ids=["get", "deployments", "statefulsets", "eso-objects"])
def test_a_server_error_names_the_call(twin: KubernetesTwin, cluster: Cluster, path: str,
                                       call: Callable[[Cluster], object], named: str) -> None:
    twin.inject(status=500, path_contains=path)
    with pytest.raises(ClusterError) as raised:
        call(cluster)
    assert raised.value.status == 500
    assert str(raised.value).startswith(f"{named} on cluster 'twin': HTTP 500")


def test_a_server_error_on_the_patch_is_not_retried(twin: KubernetesTwin, cluster: Cluster) -> None:
    twin.inject(status=503, method="PATCH")
    with pytest.raises(ClusterError) as raised:
        cluster.force_sync(V1, ES, NS, "db", "rotation-1")
    assert raised.value.status == 503
    assert f"patch externalsecrets.{ESO_GROUP}/v1 {NS}/db on cluster 'twin': HTTP 503" in str(raised.value)
    assert methods(twin).count("PATCH") == 1


def test_throttling_carries_the_servers_retry_after(twin: KubernetesTwin, cluster: Cluster) -> None:
    twin.inject(status=429, retry_after=7, method="GET")
    with pytest.raises(ClusterError) as raised:
        cluster.get(V1, ES, NS, "db")
    assert (raised.value.status, raised.value.retry_after) == (429, 7.0)


@pytest.mark.timeout(60)
def test_an_unreachable_cluster_fails_without_an_http_status(twin: KubernetesTwin) -> None:
    with socket.socket() as probe:  # a port nothing listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    opened = open_cluster(twin, timeout=1, server=f"https://127.0.0.1:{port}")
    with pytest.raises(ClusterError) as raised:
        opened.get(V1, ES, NS, "db")
    assert raised.value.status is None
    message = str(raised.value)
    assert message.startswith(f"get externalsecrets.{ESO_GROUP}/v1 {NS}/db on cluster 'twin': no HTTP status")
    assert ROTATOR not in message
    opened.close()


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("method", "path", "call"), [
    ("GET", "/externalsecrets/db", lambda c: c.get(V1, ES, NS, "db")),
    ("PATCH", "/externalsecrets/db", lambda c: c.force_sync(V1, ES, NS, "db", "rotation-1")),
    ("GET", "/daemonsets", lambda c: c.workloads(NS)),
    ("GET", "/secretstores", lambda c: c.eso_objects()),
], ids=["get", "patch", "workloads", "eso-objects"])
def test_a_server_that_does_not_answer_times_out_once(twin: KubernetesTwin, method: str, path: str,
                                                      call: Callable[[Cluster], object]) -> None:
    opened = open_cluster(twin, timeout=1)
    twin.inject(status=200, delay_seconds=4, method=method, path_contains=path, count=5)
    with pytest.raises(ClusterError) as raised:
        call(opened)
    assert raised.value.status is None and "timed out" in str(raised.value)
    assert twin.faults[0].count == 4, "urllib3 did not send the request again"
    twin.clear_faults()
    opened.close()


def test_a_server_whose_certificate_the_ca_does_not_vouch_for_is_refused(twin: KubernetesTwin) -> None:
    config = kubeconfig(twin, ROTATOR)
    config["clusters"][0]["cluster"]["certificate-authority-data"] = base64.b64encode(
        trustme.CA().cert_pem.bytes()).decode()
    opened = cluster_from_kubeconfig_text("twin", json.dumps(config))
    with pytest.raises(ClusterError) as raised:
        opened.get(V1, ES, NS, "db")
    assert raised.value.status is None
    assert "no HTTP status" in str(raised.value) and "CERTIFICATE_VERIFY_FAILED" in str(raised.value)
    assert not list(twin.requests), "nothing reached the server"
    opened.close()


def test_a_kubeconfig_nested_too_deeply_is_refused() -> None:
    with pytest.raises(ClusterError, match="not YAML \\(nested too deeply\\)"):
        cluster_from_kubeconfig_text("prod", "[" * 20000)


# -- the kubeconfig from Key Vault -----------------------------------------------------------------

SECRET_TOKEN = "kv-held-token-Zq81xWv"
CA_DATA = base64.b64encode(b"-----BEGIN CERTIFICATE-----\nnot checked here\n").decode()
HOST_PATH = "/etc/host-only/private.pem"
SKIP_VERIFY = "insecure-skip-tls-verify"


def valid_config() -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Config", "current-context": "ctx",
        "clusters": [{"name": "c", "cluster": {"server": "https://aks.example:443",
                                                "certificate-authority-data": CA_DATA}}],
        "users": [{"name": "u", "user": {"token": SECRET_TOKEN}}],
        "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u"}}],
    }


def changed(edit: Callable[[dict[str, Any]], object]) -> str:
    config = valid_config()
    edit(config)
    return str(yaml.safe_dump(config))


def cluster_of(config: dict[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = config["clusters"][0]["cluster"]
    return entry


def user_of(config: dict[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = config["users"][0]["user"]
    return entry


REFUSED: dict[str, tuple[str, str]] = {
    "not-yaml": (f"clusters: [\n  {{token: {SECRET_TOKEN}\n", "not YAML at line"),
    "not-a-mapping": ("- a\n- list\n", "not a kubeconfig"),
    "no-clusters": (changed(lambda c: c.pop("clusters")), "no clusters list"),
    "no-users": (changed(lambda c: c.pop("users")), "no users list"),
    "no-contexts": (changed(lambda c: c.pop("contexts")), "no contexts list"),
    "no-current-context": (changed(lambda c: c.pop("current-context")), "no current-context"),
    "current-context-names-none": (changed(lambda c: c.update({"current-context": "other"})),
                                   "current-context names no context"),
    "context-names-no-cluster": (changed(lambda c: c["contexts"][0]["context"].update(cluster="x")),
                                 "the current context's cluster names no cluster"),
    "context-names-no-user": (changed(lambda c: c["contexts"][0]["context"].update(user="x")),
                              "the current context's user names no user"),
    "http-server": (changed(lambda c: cluster_of(c).update(server="http://aks.example:80")),
                    "clusters[0].cluster.server must be an https:// URL"),
    "skip-tls-verify": (changed(lambda c: cluster_of(c).update({SKIP_VERIFY: True})),
                        f"clusters[0].cluster.{SKIP_VERIFY} is refused"),
    "skip-tls-verify-as-text": (changed(lambda c: cluster_of(c).update({SKIP_VERIFY: "false"})),
                                f"clusters[0].cluster.{SKIP_VERIFY} is refused"),
    "certificate-authority-file": (
        changed(lambda c: cluster_of(c).update({"certificate-authority": HOST_PATH})),
        "clusters[0].cluster.certificate-authority is refused"),
    "client-certificate-file": (changed(lambda c: user_of(c).update({"client-certificate": HOST_PATH})),
                                "users[0].user.client-certificate is refused"),
    "client-key-file": (changed(lambda c: user_of(c).update({"client-key": HOST_PATH})),
                        "users[0].user.client-key is refused"),
    "token-file": (changed(lambda c: user_of(c).update({"tokenFile": HOST_PATH})),
                   "users[0].user.tokenFile is refused"),
    "exec": (changed(lambda c: user_of(c).update(exec={"command": "/bin/sh", "args": ["-c", HOST_PATH]})),
             "users[0].user.exec is refused"),
    "auth-provider": (changed(lambda c: user_of(c).update({"auth-provider": {
        "name": "gcp", "config": {"cmd-path": HOST_PATH}}})), "users[0].user.auth-provider is refused"),
    "exec-on-an-unused-user": (changed(lambda c: c["users"].append(
        {"name": "other", "user": {"exec": {"command": HOST_PATH}}})), "users[1].user.exec is refused"),
    "no-credential": (changed(lambda c: c["users"][0].update(user={"username": "admin", "password": "pw"})),
                      "users[0].user has no credential"),
    "certificate-without-key": (changed(lambda c: user_of(c).update({"client-certificate-data": CA_DATA})),
                                "needs both client-certificate-data and client-key-data"),
    "bad-base64": (changed(lambda c: cluster_of(c).update({"certificate-authority-data": "%%%"})),
                   "clusters[0].cluster.certificate-authority-data is not base64"),
    "token-with-a-newline": (changed(lambda c: user_of(c).update(token=SECRET_TOKEN + "\nX-Injected: 1")),
                             "users[0].user.token must be one non-empty word"),
}


@pytest.mark.parametrize(("text", "says"), list(REFUSED.values()), ids=list(REFUSED))
def test_an_unsafe_or_broken_kubeconfig_is_refused_naming_the_field(text: str, says: str) -> None:
    with pytest.raises(ClusterError) as raised:
        cluster_from_kubeconfig_text("prod", text)
    message = str(raised.value)
    assert message.startswith("kubeconfig for cluster 'prod': ")
    assert says in message
    for value in (SECRET_TOKEN, HOST_PATH, CA_DATA, "/bin/sh", "aks.example"):
        assert value not in message
    assert raised.value.__cause__ is None


def test_the_twins_token_kubeconfig_works_as_json_and_as_yaml(twin: KubernetesTwin) -> None:
    config = kubeconfig(twin, ROTATOR)
    for text in (json.dumps(config), yaml.safe_dump(config)):
        opened = cluster_from_kubeconfig_text("twin", text)
        assert repr(opened) == "Cluster(name='twin')"
        obj = opened.get(V1, ES, NS, "db")
        assert obj is not None and obj["metadata"]["name"] == "db"
        opened.close()


def test_a_client_certificate_kubeconfig_is_accepted(twin: KubernetesTwin) -> None:
    """The twin authenticates bearer tokens only: the handshake succeeds, the request is a 401."""
    issued = trustme.CA().issue_cert("rotator")
    config = kubeconfig(twin, ROTATOR)
    config["users"][0]["user"] = {
        "client-certificate-data": base64.b64encode(issued.cert_chain_pems[0].bytes()).decode(),
        "client-key-data": base64.b64encode(issued.private_key_pem.bytes()).decode(),
    }
    opened = cluster_from_kubeconfig_text("twin", json.dumps(config))
    with pytest.raises(ClusterError) as raised:
        opened.get(V1, ES, NS, "db")
    assert raised.value.status == 401
    opened.close()


def test_outside_a_pod_there_is_no_in_cluster_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_PORT", raising=False)
    with pytest.raises(ClusterError, match="cluster 'in-cluster': not running in a Kubernetes pod"):
        cluster_in_cluster()
