"""The Kubernetes twin on the wire: raw HTTPS requests, exact bodies, headers and status codes.

Needs no Kubernetes client (``test_k8s_twin.py`` covers the official one): every request is
made with ``http.client`` trusting the twin's CA, so what is asserted is what any client gets.
Sections: discovery, errors and auth, writes and concurrency, patches, status and
finalizers, validation, faults and the request log, the in-process API (seeding, watch).
"""

from __future__ import annotations

import base64
import http.client
import json
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pytest

from twins.kubernetes import (
    ADDED,
    DELETED,
    MODIFIED,
    ApiError,
    Fault,
    Identity,
    KubernetesTwin,
    PolicyRule,
    RecordedRequest,
    rules_from_manifests,
)

ES_PATH = "/apis/external-secrets.io/v1/namespaces/apps/externalsecrets"
DEPLOY_PATH = "/apis/apps/v1/namespaces/apps/deployments"
SECRET_PATH = "/api/v1/namespaces/apps/secrets"
MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"
VIEWER = "viewer-token"


@dataclass
class Reply:
    """Status, headers (repeated ones kept) and decoded body of one request."""

    status: int
    headers: list[tuple[str, str]]
    body: Any

    def header(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key.lower() == name.lower()]


def call(
    twin: KubernetesTwin,
    method: str,
    path: str,
    body: Any = None,
    *,
    token: str | None = "",
    content_type: str = "application/json",
) -> Reply:
    """One request; ``token=""`` means the admin token, ``None`` no Authorization header."""
    context = ssl.create_default_context(cafile=str(twin.ca_path))
    address = urlsplit(twin.url)
    connection = http.client.HTTPSConnection(
        address.hostname or "", address.port, context=context, timeout=10
    )
    headers = {"Accept": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token or twin.admin_token}"
    data = None
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode("utf-8")
        headers["Content-Type"] = content_type
    try:
        connection.request(method, path, body=data, headers=headers)
        response = connection.getresponse()
        payload = response.read()
        decoded: Any = payload.decode("utf-8")
        if response.getheader("Content-Type") == "application/json":
            decoded = json.loads(payload)
        return Reply(response.status, response.getheaders(), decoded)
    finally:
        connection.close()


@pytest.fixture
def twin() -> Iterator[KubernetesTwin]:
    viewer = Identity("system:serviceaccount:apps:viewer", (PolicyRule(("get", "list"), ("apps",), ("*",)),))
    with KubernetesTwin(tokens={VIEWER: viewer}) as running:
        running.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "apps"}})
        yield running


def external_secret(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "external-secrets.io/v1",
        "kind": "ExternalSecret",
        "metadata": {"name": name, "namespace": "apps"},
        "spec": {
            "secretStoreRef": {"name": "vault", "kind": "ClusterSecretStore"},
            "data": [{"secretKey": "password", "remoteRef": {"key": f"{name}-password"}}],
            **spec,
        },
    }


def deployment(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "apps"},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [
                        {"name": "app", "image": "app:1", "env": [{"name": "A", "value": "1"}]},
                        {"name": "sidecar", "image": "proxy:1"},
                    ]
                },
            },
        },
    }


# -- discovery --------------------------------------------------------------------------------


def test_discovery_documents(twin: KubernetesTwin) -> None:
    api = call(twin, "GET", "/api").body
    assert api["kind"] == "APIVersions"
    assert api["versions"] == ["v1"]
    assert api["serverAddressByClientCIDRs"][0]["serverAddress"] == twin.url.removeprefix("https://")

    groups = call(twin, "GET", "/apis").body
    assert groups["kind"] == "APIGroupList"
    by_name = {g["name"]: g for g in groups["groups"]}
    assert set(by_name) == {"apps", "external-secrets.io"}
    assert by_name["external-secrets.io"]["preferredVersion"] == {
        "groupVersion": "external-secrets.io/v1",
        "version": "v1",
    }
    assert call(twin, "GET", "/apis/external-secrets.io").body["kind"] == "APIGroup"

    eso = call(twin, "GET", "/apis/external-secrets.io/v1").body
    assert eso["kind"] == "APIResourceList"
    assert eso["groupVersion"] == "external-secrets.io/v1"
    resources = {r["name"]: r for r in eso["resources"]}
    assert set(resources) == {
        f"{plural}{sub}"
        for plural in ("externalsecrets", "clusterexternalsecrets", "secretstores", "clustersecretstores")
        for sub in ("", "/status")
    }
    assert resources["externalsecrets"] == {
        "name": "externalsecrets",
        "singularName": "externalsecret",
        "namespaced": True,
        "kind": "ExternalSecret",
        "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update"],
        "shortNames": ["es"],
        "categories": ["external-secrets"],
    }
    assert resources["clusterexternalsecrets"]["namespaced"] is False
    assert resources["externalsecrets/status"]["verbs"] == ["get", "patch", "update"]

    core = call(twin, "GET", "/api/v1").body
    assert "apiVersion" not in core  # the core group's list has none, as on a real server
    assert {r["name"] for r in core["resources"]} >= {"secrets", "namespaces", "namespaces/status"}
    apps = {r["name"] for r in call(twin, "GET", "/apis/apps/v1").body["resources"]}
    assert apps == {"deployments", "deployments/status", "statefulsets", "statefulsets/status",
                    "daemonsets", "daemonsets/status"}  # fmt: skip
    assert call(twin, "GET", "/version").body["gitVersion"].startswith("v1.")
    assert call(twin, "GET", "/apis/nothing.example/v1").status == 404


def test_only_v1_when_v1beta1_is_not_served() -> None:
    with KubernetesTwin(eso_versions=["v1"]) as twin:
        assert call(twin, "GET", "/apis/external-secrets.io/v1beta1").status == 404
        assert call(twin, "GET", "/apis/external-secrets.io/v1beta1/externalsecrets").status == 404


# -- errors and auth --------------------------------------------------------------------------


def test_401_without_or_with_an_unknown_token(twin: KubernetesTwin) -> None:
    unauthorized = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "Unauthorized",
        "reason": "Unauthorized",
        "code": 401,
    }
    for token in (None, "wrong"):
        for path in ("/api", ES_PATH):
            reply = call(twin, "GET", path, token=token)
            assert (reply.status, reply.body) == (401, unauthorized)
    assert [r.user for r in twin.requests] == [None] * 4


def test_403_before_routing_with_the_real_wording(twin: KubernetesTwin) -> None:
    assert call(twin, "GET", "/apis", token=VIEWER).status == 200  # discovery is open
    assert call(twin, "GET", DEPLOY_PATH, token=VIEWER).status == 200
    reply = call(twin, "GET", "/apis/external-secrets.io/v1/externalsecrets", token=VIEWER)
    assert reply.status == 403
    assert reply.body["message"] == (
        "externalsecrets.external-secrets.io is forbidden: "
        'User "system:serviceaccount:apps:viewer" cannot list resource "externalsecrets" '
        'in API group "external-secrets.io" at the cluster scope'
    )
    assert reply.body["details"] == {"group": "external-secrets.io", "kind": "externalsecrets"}
    # even for a resource that does not exist, as RBAC runs before routing
    assert call(twin, "GET", "/apis/apps/v1/namespaces/apps/replicasets", token=VIEWER).status == 404
    assert call(twin, "GET", "/apis/batch/v1/namespaces/apps/jobs", token=VIEWER).status == 403
    namespace = call(twin, "GET", "/api/v1/namespaces/apps", token=VIEWER)
    assert namespace.body["message"] == (
        'namespaces "apps" is forbidden: User "system:serviceaccount:apps:viewer" cannot get resource '
        '"namespaces" in API group "" in the namespace "apps"'
    )


def test_rules_from_role_manifests_and_resource_names() -> None:
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "rotator", "namespace": "apps"},
        "rules": [
            {
                "apiGroups": ["external-secrets.io"],
                "resources": ["externalsecrets"],
                "verbs": ["get", "patch"],
                "resourceNames": ["db"],
            },
        ],
    }  # fmt: skip
    cluster_role = {
        "kind": "ClusterRole",
        "metadata": {"name": "stores"},
        "rules": [{"apiGroups": ["external-secrets.io"], "resources": ["*/status"], "verbs": ["get"]}],
    }
    rules = rules_from_manifests([role, cluster_role, {"kind": "RoleBinding"}])
    with KubernetesTwin(tokens={"t": rules}) as twin:
        twin.put(external_secret("db"))
        twin.put(external_secret("other"))
        assert call(twin, "GET", f"{ES_PATH}/db", token="t").status == 200
        assert call(twin, "PATCH", f"{ES_PATH}/db", {}, token="t", content_type=MERGE).status == 200
        assert call(twin, "GET", f"{ES_PATH}/other", token="t").status == 403
        assert call(twin, "GET", ES_PATH, token="t").status == 403  # resourceNames never grant list
        assert call(twin, "GET", f"{ES_PATH}/other/status", token="t").status == 200


def test_method_and_route_errors(twin: KubernetesTwin) -> None:
    assert call(twin, "POST", f"{ES_PATH}/db", external_secret("db")).status == 405
    assert call(twin, "PUT", ES_PATH, external_secret("db")).status == 405
    assert call(twin, "GET", "/apis/external-secrets.io/v1/externalsecrets/db").status == 404
    assert (
        call(twin, "POST", "/apis/external-secrets.io/v1/externalsecrets", external_secret("db")).status
        == 405
    )
    assert call(twin, "GET", "/apis/external-secrets.io/v1/namespaces/apps/clustersecretstores").status == 404
    assert call(twin, "GET", f"{SECRET_PATH}/x/status").status == 404
    watch = call(twin, "GET", f"{ES_PATH}?watch=true")
    assert (watch.status, watch.body["reason"]) == (405, "MethodNotAllowed")
    bad_json = call(twin, "POST", ES_PATH, b"{not json")
    assert (bad_json.status, bad_json.body["reason"]) == (400, "BadRequest")
    missing_kind = call(twin, "POST", ES_PATH, {"metadata": {"name": "x"}})
    assert missing_kind.status == 400
    assert missing_kind.body["message"].startswith("Object 'Kind' is missing in ")
    wrong_version = call(
        twin, "POST", ES_PATH, {**external_secret("x"), "apiVersion": "external-secrets.io/v1beta1"}
    )
    assert wrong_version.body["message"] == (
        "the API version in the data (external-secrets.io/v1beta1) does not match the expected API version "
        "(external-secrets.io/v1)"
    )
    assert call(twin, "GET", f"{ES_PATH}?labelSelector={quote('a in (')}").status == 400
    unknown_field = call(twin, "GET", f"{SECRET_PATH}?fieldSelector=spec.x%3Dy")
    assert (unknown_field.status, unknown_field.body["message"]) == (400, "field label not supported: spec.x")
    assert call(twin, "GET", f"{ES_PATH}?limit=x").status == 400
    assert call(twin, "GET", f"{ES_PATH}?continue=garbage").status == 400


# -- writes and concurrency ------------------------------------------------------------------


def test_create_sets_server_fields_and_refuses_what_the_server_refuses(twin: KubernetesTwin) -> None:
    created = call(twin, "POST", ES_PATH, external_secret("db"))
    assert created.status == 201
    assert created.header("Content-Type") == ["application/json"]
    assert created.header("Audit-Id")
    before = int(created.body["metadata"]["resourceVersion"])

    stale = external_secret("again")
    stale["metadata"]["resourceVersion"] = "5"
    reply = call(twin, "POST", ES_PATH, stale)
    assert (reply.status, reply.body["message"]) == (
        500,
        "resourceVersion should not be set on objects to be created",
    )

    nowhere = call(twin, "POST", "/apis/external-secrets.io/v1/namespaces/missing/externalsecrets", {
        **external_secret("db"), "metadata": {"name": "db"},
    })  # fmt: skip
    assert (nowhere.status, nowhere.body["message"]) == (404, 'namespaces "missing" not found')
    other_namespace = {**external_secret("db"), "metadata": {"name": "db", "namespace": "default"}}
    assert call(twin, "POST", ES_PATH, other_namespace).status == 400

    generated = call(twin, "POST", SECRET_PATH, {"metadata": {"generateName": "token-"}}).body
    assert generated["metadata"]["name"].startswith("token-") and len(generated["metadata"]["name"]) == 11

    dry = call(twin, "POST", f"{ES_PATH}?dryRun=All", external_secret("dry"))
    assert dry.status == 201
    assert call(twin, "GET", f"{ES_PATH}/dry").status == 404
    assert int(twin.store.resource_version) == before + 1  # only the generated Secret was written


def test_put_needs_the_resource_version_for_custom_resources_only(twin: KubernetesTwin) -> None:
    twin.put(external_secret("db"))
    unconditional = call(twin, "PUT", f"{ES_PATH}/db", external_secret("db"))
    assert unconditional.status == 422
    assert unconditional.body["message"] == (
        'ExternalSecret.external-secrets.io "db" is invalid: metadata.resourceVersion: Invalid value: 0x0: '
        "must be specified for an update"
    )
    twin.put(deployment("web"))
    assert call(twin, "PUT", f"{DEPLOY_PATH}/web", deployment("web")).status == 200
    renamed = call(twin, "PUT", f"{DEPLOY_PATH}/web", {**deployment("web"), "metadata": {"name": "other"}})
    assert (
        renamed.body["message"] == "the name of the object (other) does not match the name on the URL (web)"
    )
    assert call(twin, "PUT", f"{DEPLOY_PATH}/nope", deployment("nope")).status == 404


def test_lists_report_the_store_version_and_omit_kind_in_builtin_items(twin: KubernetesTwin) -> None:
    twin.put(deployment("web"))
    twin.put(external_secret("db"))
    deployments = call(twin, "GET", DEPLOY_PATH).body
    assert deployments["kind"] == "DeploymentList"
    assert deployments["apiVersion"] == "apps/v1"
    assert "kind" not in deployments["items"][0]  # typed lists drop it, as the real server does
    externals = call(twin, "GET", ES_PATH).body
    assert externals["items"][0]["kind"] == "ExternalSecret"
    assert externals["metadata"] == {"resourceVersion": twin.store.resource_version}


def test_delete_answers_a_status_for_builtins_and_cascades_namespaces(twin: KubernetesTwin) -> None:
    secret = twin.put({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "apps"}})
    twin.put(external_secret("db"))
    precondition = {"preconditions": {"uid": "not-the-uid"}}
    failed = call(twin, "DELETE", f"{SECRET_PATH}/s", precondition)
    assert failed.status == 409
    assert "Precondition failed: UID in precondition: not-the-uid" in failed.body["message"]
    deleted = call(twin, "DELETE", f"{SECRET_PATH}/s")
    assert deleted.body == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": {"name": "s", "kind": "secrets", "uid": secret["metadata"]["uid"]},
    }
    assert call(twin, "DELETE", "/api/v1/namespaces/apps").status == 200
    assert twin.objects("ExternalSecret") == []


def test_delete_collection_by_label(twin: KubernetesTwin) -> None:
    for name, tier in (("a", "db"), ("b", "db"), ("c", "web")):
        obj = external_secret(name)
        obj["metadata"]["labels"] = {"tier": tier}
        twin.put(obj)
    reply = call(twin, "DELETE", f"{ES_PATH}?labelSelector=tier%3Ddb")
    assert [i["metadata"]["name"] for i in reply.body["items"]] == ["a", "b"]
    assert [o["metadata"]["name"] for o in twin.objects("ExternalSecret")] == ["c"]


# -- patches ------------------------------------------------------------------------------


def test_patch_types(twin: KubernetesTwin) -> None:
    twin.put(deployment("web"))
    strategic = {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "app:2"}]}}}}
    merged = call(twin, "PATCH", f"{DEPLOY_PATH}/web", strategic, content_type=STRATEGIC).body
    containers = merged["spec"]["template"]["spec"]["containers"]
    assert [(c["name"], c["image"]) for c in containers] == [("app", "app:2"), ("sidecar", "proxy:1")]
    assert containers[0]["env"] == [{"name": "A", "value": "1"}]  # merged by name, not replaced

    replaced = call(twin, "PATCH", f"{DEPLOY_PATH}/web", strategic, content_type=MERGE).body
    assert [c["name"] for c in replaced["spec"]["template"]["spec"]["containers"]] == ["app"]  # RFC 7386

    operations = [
        {"op": "test", "path": "/spec/replicas", "value": 1},
        {"op": "replace", "path": "/spec/replicas", "value": 3},
        {"op": "add", "path": "/metadata/labels", "value": {"a/b": "c"}},
    ]
    patched = call(twin, "PATCH", f"{DEPLOY_PATH}/web", operations, content_type=JSON_PATCH).body
    assert patched["spec"]["replicas"] == 3
    assert patched["metadata"]["labels"] == {"a/b": "c"}
    test_one = [{"op": "test", "path": "/spec/replicas", "value": 1}]
    failing = call(twin, "PATCH", f"{DEPLOY_PATH}/web", test_one, content_type=JSON_PATCH)
    assert failing.status == 422

    twin.put(external_secret("db"))
    refused = call(twin, "PATCH", f"{ES_PATH}/db", {"metadata": {}}, content_type=STRATEGIC)
    assert refused.status == 415  # custom resources take no strategic merge patch
    assert refused.body["message"] == (
        "the body of the request was in an unknown format - accepted media types include: "
        "application/json-patch+json, application/merge-patch+json"
    )
    assert (
        call(twin, "PATCH", f"{ES_PATH}/db", "x", content_type="application/apply-patch+yaml").status == 415
    )
    assert call(twin, "PATCH", f"{ES_PATH}/nope", {}, content_type=MERGE).status == 404


# -- status subresource, finalizers -------------------------------------------------------------


def test_put_to_status_changes_only_status(twin: KubernetesTwin) -> None:
    current = twin.put(deployment("web"))
    current["status"] = {"observedGeneration": 1, "replicas": 1}
    current["spec"]["replicas"] = 9
    reply = call(twin, "PUT", f"{DEPLOY_PATH}/web/status", current)
    assert reply.body["status"] == {"observedGeneration": 1, "replicas": 1}
    assert reply.body["spec"]["replicas"] == 1
    stale = call(twin, "PUT", f"{DEPLOY_PATH}/web/status", current)
    assert stale.status == 409
    assert call(twin, "DELETE", f"{DEPLOY_PATH}/web/status").status == 405


def test_finalizers_hold_a_deletion_until_removed(twin: KubernetesTwin) -> None:
    events: list[tuple[str, str]] = []
    twin.watch(lambda event, obj: events.append((event, obj["metadata"]["name"])))
    obj = external_secret("db")
    obj["metadata"]["finalizers"] = ["example.com/cleanup"]
    twin.put(obj)

    marked = call(twin, "DELETE", f"{ES_PATH}/db")
    assert marked.status == 200
    assert marked.body["metadata"]["deletionTimestamp"]
    assert call(twin, "GET", f"{ES_PATH}/db").status == 200
    more = call(twin, "PATCH", f"{ES_PATH}/db", {"metadata": {"finalizers": ["a", "example.com/cleanup"]}},
                content_type=MERGE)  # fmt: skip
    assert more.status == 422
    assert (
        call(twin, "PATCH", f"{ES_PATH}/db", {"metadata": {"finalizers": None}}, content_type=MERGE).status
        == 200
    )
    assert call(twin, "GET", f"{ES_PATH}/db").status == 404
    assert events == [(ADDED, "db"), (MODIFIED, "db"), (MODIFIED, "db"), (DELETED, "db")]


# -- validation ---------------------------------------------------------------------------------


def test_metadata_and_builtin_rules(twin: KubernetesTwin) -> None:
    bad_name = call(twin, "POST", SECRET_PATH, {"metadata": {"name": "Bad_Name"}})
    assert bad_name.status == 422
    assert bad_name.body["message"].startswith(
        'Secret "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": '
        "a lowercase RFC 1123 subdomain"
    )
    bad_key = call(twin, "POST", SECRET_PATH, {"metadata": {"name": "s"}, "data": {"a b": "eA=="}})
    assert bad_key.body["details"]["causes"][0]["field"] == "data[a b]"
    assert call(twin, "POST", SECRET_PATH, {"metadata": {"name": "s"}, "data": {"k": "%%%"}}).status == 400
    immutable = {"metadata": {"name": "frozen"}, "stringData": {"k": "v"}, "immutable": True}
    assert call(twin, "POST", SECRET_PATH, immutable).status == 201
    changed = call(twin, "PATCH", f"{SECRET_PATH}/frozen", {"stringData": {"k": "w"}}, content_type=MERGE)
    assert changed.body["message"] == (
        'Secret "frozen" is invalid: data: Forbidden: field is immutable when `immutable` is set'
    )

    mismatched = deployment("web")
    mismatched["spec"]["template"]["metadata"]["labels"] = {"app": "other"}
    reply = call(twin, "POST", DEPLOY_PATH, mismatched)
    assert reply.body["details"]["causes"][0]["field"] == "spec.template.metadata.labels"
    call(twin, "POST", DEPLOY_PATH, deployment("web"))
    moved = call(twin, "PATCH", f"{DEPLOY_PATH}/web", {"spec": {"selector": {"matchLabels": {"app": "x"}}}},
                 content_type=MERGE)  # fmt: skip
    assert moved.status == 422


def test_schema_pruning_warnings_and_strict_mode(twin: KubernetesTwin) -> None:
    if not twin.validating:
        pytest.skip("the ESO CRDs (../shared/eso-crds) are not present")
    typo = external_secret("db", refreshIntervall="1m")
    strict = call(twin, "POST", f"{ES_PATH}?fieldValidation=Strict", typo)
    assert (strict.status, strict.body["message"]) == (
        400,
        'strict decoding error: unknown field "spec.refreshIntervall"',
    )
    warned = call(twin, "POST", ES_PATH, typo)
    assert warned.status == 201
    assert warned.header("Warning") == ['299 - "unknown field \\"spec.refreshIntervall\\""']
    assert "refreshIntervall" not in warned.body["spec"]  # pruned, as a structural schema does

    old = call(twin, "GET", "/apis/external-secrets.io/v1beta1/namespaces/apps/externalsecrets/db")
    assert old.body["apiVersion"] == "external-secrets.io/v1beta1"
    patched = call(twin, "PATCH", "/apis/external-secrets.io/v1beta1/namespaces/apps/externalsecrets/db",
                   {"metadata": {"labels": {"a": "b"}}}, content_type=MERGE)  # fmt: skip
    assert patched.header("Warning") == ['299 - "external-secrets.io/v1beta1 ExternalSecret is deprecated"']

    store = {"apiVersion": "external-secrets.io/v1", "kind": "SecretStore",
             "metadata": {"name": "s", "namespace": "apps"}, "spec": {}}  # fmt: skip
    missing = call(twin, "POST", "/apis/external-secrets.io/v1/namespaces/apps/secretstores", store)
    assert (
        missing.body["message"]
        == 'SecretStore.external-secrets.io "s" is invalid: spec.provider: Required value'
    )


def test_without_crds_eso_objects_are_not_validated(caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    with KubernetesTwin(crd_dir=tmp_path / "absent") as twin:
        assert not twin.validating
        reply = call(twin, "POST", "/apis/external-secrets.io/v1/namespaces/default/externalsecrets", {
            **external_secret("db", refreshPolicy="Bad"), "metadata": {"name": "db"},
        })  # fmt: skip
        assert reply.status == 201
    assert "served without schema validation" in caplog.text


# -- faults and the request log ----------------------------------------------------------------


def test_faults_answer_with_a_status_or_drop_the_connection(twin: KubernetesTwin) -> None:
    twin.inject(status=429, retry_after=2, method="GET", path_contains="/externalsecrets")
    throttled = call(twin, "GET", ES_PATH)
    assert throttled.status == 429
    assert throttled.header("Retry-After") == ["2"]
    assert throttled.body["reason"] == "TooManyRequests"
    assert throttled.body["details"] == {"retryAfterSeconds": 2}
    assert call(twin, "GET", ES_PATH).status == 200  # consumed

    twin.inject(Fault(status=0, path_equals=ES_PATH))
    with pytest.raises((ConnectionError, http.client.HTTPException, OSError)):
        call(twin, "GET", ES_PATH)

    twin.put(external_secret("db"))
    twin.inject(status=503, method="PATCH", after_processing=True)
    lost = call(
        twin, "PATCH", f"{ES_PATH}/db", {"metadata": {"labels": {"landed": "yes"}}}, content_type=MERGE
    )
    assert (lost.status, lost.body["reason"]) == (503, "ServiceUnavailable")
    stored = twin.get("external-secrets.io/v1", "ExternalSecret", "apps", "db")
    assert stored is not None and stored["metadata"]["labels"] == {"landed": "yes"}
    assert twin.faults == []
    assert twin.requests[-1] == RecordedRequest(
        method="PATCH",
        path=f"{ES_PATH}/db",
        query={},
        user="twin-admin",
        verb="patch",
        content_type=MERGE,
        status=503,
    )
    assert [r.status for r in twin.requests] == [429, 200, 0, 503]


# -- in-process API ------------------------------------------------------------------------------


def test_seeding_reading_and_watching(twin: KubernetesTwin) -> None:
    seen: list[tuple[str, str, str]] = []
    unsubscribe = twin.watch(
        lambda event, obj: seen.append((event, obj["kind"], obj["metadata"]["resourceVersion"]))
    )
    obj = external_secret("db")
    obj["status"] = {"conditions": [{"type": "Ready", "status": "True"}]}
    stored = twin.put(obj)
    assert stored["status"] == obj["status"]  # seeding keeps status
    assert stored["metadata"]["generation"] == 1

    again = dict(obj, spec={**obj["spec"], "refreshInterval": "2m"})
    assert twin.put(again)["metadata"]["generation"] == 2
    read = twin.get("external-secrets.io/v1beta1", "ExternalSecret", "apps", "db")
    assert read is not None and read["apiVersion"] == "external-secrets.io/v1beta1"
    assert twin.get("external-secrets.io/v1", "ExternalSecret", "apps", "nope") is None
    assert [o["metadata"]["name"] for o in twin.objects("ExternalSecret")] == ["db"]

    secret = twin.put({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "fresh"},
                       "stringData": {"k": "v"}})  # fmt: skip
    assert secret["data"] == {"k": base64.b64encode(b"v").decode()}
    assert twin.get("v1", "Namespace", None, "fresh") is not None  # created on demand
    assert twin.delete("v1", "Secret", "fresh", "s") is True
    assert twin.delete("v1", "Secret", "fresh", "s") is False
    unsubscribe()
    twin.put(external_secret("later"))

    assert [(e, k) for e, k, _ in seen] == [
        (ADDED, "ExternalSecret"),
        (MODIFIED, "ExternalSecret"),
        (ADDED, "Namespace"),
        (ADDED, "Secret"),
        (DELETED, "Secret"),
    ]
    versions = [int(v) for _, _, v in seen]
    assert versions == sorted(versions)

    if twin.validating:
        with pytest.raises(ApiError) as caught:
            twin.put(external_secret("bad", refreshPolicy="Bad"))
        assert caught.value.code == 422
    with pytest.raises(KeyError):
        twin.put({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}})


def test_a_watcher_may_write_back_without_deadlock(twin: KubernetesTwin) -> None:
    def mark_ready(event: str, obj: dict[str, Any]) -> None:
        if event == ADDED and obj["kind"] == "ExternalSecret":
            resource_type = twin.registry.by_kind("ExternalSecret")
            twin.store.patch(
                resource_type, "v1", "apps", obj["metadata"]["name"],
                lambda current: {**current, "status": {"refreshTime": "2026-01-01T00:00:00Z"}},
                subresource="status",
            )  # fmt: skip

    twin.watch(mark_ready)
    call(twin, "POST", ES_PATH, external_secret("db"))
    read = call(twin, "GET", f"{ES_PATH}/db").body
    assert read["status"] == {"refreshTime": "2026-01-01T00:00:00Z"}
    assert read["metadata"]["generation"] == 1


def test_concurrent_read_modify_write_loses_no_update(twin: KubernetesTwin) -> None:
    """Four writers incrementing one counter with GET + PUT: 409s force retries, no write is lost."""
    twin.put(external_secret("counter"))
    conflicts: list[int] = []

    def increment(times: int) -> None:
        done = 0
        for _ in range(200):  # bounded: each attempt either lands or sees a 409
            if done == times:
                return
            current = call(twin, "GET", f"{ES_PATH}/counter").body
            annotations = current["metadata"].setdefault("annotations", {})
            annotations["count"] = str(int(annotations.get("count", "0")) + 1)
            reply = call(twin, "PUT", f"{ES_PATH}/counter", current)
            if reply.status == 409:
                conflicts.append(1)
                continue
            assert reply.status == 200
            done += 1
        raise AssertionError("too many conflicts")

    threads = [threading.Thread(target=increment, args=(5,)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    final = twin.get("external-secrets.io/v1", "ExternalSecret", "apps", "counter")
    assert final is not None and final["metadata"]["annotations"]["count"] == "20"
    assert int(final["metadata"]["resourceVersion"]) > 20
