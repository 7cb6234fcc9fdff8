"""The Kubernetes twin through the official ``kubernetes`` client, unchanged.

Each test drives the twin as the rotator's Kubernetes adapter will: ``CustomObjectsApi`` for
the ESO kinds, ``CoreV1Api`` for Secrets, ``AppsV1Api`` for workloads, and asserts what the
real API server would answer (status codes, ``Status`` reasons and messages, resourceVersion,
generation). ``test_k8s_twin_wire.py`` checks the same server over raw HTTPS, with no
client in between.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client, config, dynamic
from kubernetes.client.rest import ApiException

from twins.kubernetes import ESO_GROUP, Identity, KubernetesTwin, PolicyRule

NS = "apps"
V1 = "v1"
ES = "externalsecrets"
CES = "clusterexternalsecrets"

LEAST_PRIVILEGE = (
    PolicyRule(verbs=("get", "list", "patch"), api_groups=(ESO_GROUP,), resources=(ES, CES)),
    PolicyRule(
        verbs=("get", "list"), api_groups=(ESO_GROUP,), resources=("secretstores", "clustersecretstores")
    ),
    PolicyRule(
        verbs=("get", "list"), api_groups=("apps",), resources=("deployments", "statefulsets", "daemonsets")
    ),
)
ROTATOR = "rotator-token"
ROTATOR_USER = "system:serviceaccount:akv-rotator:rotator"


@pytest.fixture
def twin() -> Iterator[KubernetesTwin]:
    tokens = {ROTATOR: Identity(ROTATOR_USER, LEAST_PRIVILEGE)}
    with KubernetesTwin(tokens=tokens) as running:
        running.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
        yield running


@pytest.fixture
def api(twin: KubernetesTwin) -> Iterator[Any]:
    with twin.api_client() as api_client:
        yield api_client


@pytest.fixture
def custom(api: Any) -> Any:
    return client.CustomObjectsApi(api)


def external_secret(
    name: str, namespace: str = NS, labels: dict[str, str] | None = None, **spec: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": f"{ESO_GROUP}/v1",
        "kind": "ExternalSecret",
        "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
        "spec": {
            "secretStoreRef": {"name": "vault", "kind": "ClusterSecretStore"},
            "target": {"name": name},
            "data": [{"secretKey": "password", "remoteRef": {"key": f"{name}-password"}}],
            **spec,
        },
    }
    return body


def deployment(name: str, kind: str = "Deployment") -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": kind,
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": "registry.example/app:1.0"}]},
            },
        },
    }


def status_of(error: ApiException) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(error.body)
    return body


# -- ESO kinds through CustomObjectsApi -----------------------------------------------------------


def test_external_secret_create_get_patch_delete(twin: KubernetesTwin, custom: Any) -> None:
    created = custom.create_namespaced_custom_object(ESO_GROUP, V1, NS, ES, external_secret("db"))

    metadata = created["metadata"]
    assert created["apiVersion"] == "external-secrets.io/v1"
    assert created["kind"] == "ExternalSecret"
    assert metadata["generation"] == 1
    assert metadata["uid"] and metadata["creationTimestamp"].endswith("Z")
    rv = int(metadata["resourceVersion"])
    if twin.validating:  # schema defaults, as the API server applies them
        assert created["spec"]["refreshInterval"] == "1h0m0s"
        assert created["spec"]["target"]["creationPolicy"] == "Owner"

    patched = custom.patch_namespaced_custom_object(
        ESO_GROUP, V1, NS, ES, "db", {"metadata": {"annotations": {"force-sync": "2026-01-01T00:00:00Z"}}}
    )
    assert patched["metadata"]["annotations"] == {"force-sync": "2026-01-01T00:00:00Z"}
    assert int(patched["metadata"]["resourceVersion"]) == rv + 1
    assert patched["metadata"]["generation"] == 1  # metadata only
    assert twin.requests[-1].content_type == "application/merge-patch+json"

    removed = custom.patch_namespaced_custom_object(
        ESO_GROUP, V1, NS, ES, "db", {"metadata": {"annotations": {"force-sync": None}}}
    )
    assert "force-sync" not in (removed["metadata"].get("annotations") or {})

    read = custom.get_namespaced_custom_object(ESO_GROUP, V1, NS, ES, "db")
    assert read["metadata"]["resourceVersion"] == removed["metadata"]["resourceVersion"]

    deleted = custom.delete_namespaced_custom_object(ESO_GROUP, V1, NS, ES, "db")
    assert deleted["metadata"]["name"] == "db"  # custom resources answer with the object
    with pytest.raises(ApiException) as caught:
        custom.get_namespaced_custom_object(ESO_GROUP, V1, NS, ES, "db")
    assert caught.value.status == 404
    assert status_of(caught.value) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'externalsecrets.external-secrets.io "db" not found',
        "reason": "NotFound",
        "details": {"name": "db", "group": "external-secrets.io", "kind": "externalsecrets"},
        "code": 404,
    }


def test_create_conflicts_with_an_existing_name(custom: Any) -> None:
    custom.create_namespaced_custom_object(ESO_GROUP, V1, NS, ES, external_secret("db"))
    with pytest.raises(ApiException) as caught:
        custom.create_namespaced_custom_object(ESO_GROUP, V1, NS, ES, external_secret("db"))
    assert caught.value.status == 409
    assert status_of(caught.value)["reason"] == "AlreadyExists"
    assert status_of(caught.value)["message"] == 'externalsecrets.external-secrets.io "db" already exists'


def test_lists_across_namespaces_and_by_label(twin: KubernetesTwin, custom: Any) -> None:
    twin.put(external_secret("a", labels={"tier": "db", "team": "x"}))
    twin.put(external_secret("b", labels={"tier": "cache"}))
    twin.put(external_secret("c", namespace="other", labels={"tier": "db"}))

    everywhere = custom.list_cluster_custom_object(ESO_GROUP, V1, ES)
    assert [(i["metadata"]["namespace"], i["metadata"]["name"]) for i in everywhere["items"]] == [
        ("apps", "a"),
        ("apps", "b"),
        ("other", "c"),
    ]
    assert everywhere["kind"] == "ExternalSecretList"
    assert everywhere["metadata"]["resourceVersion"] == twin.store.resource_version

    def names(**kwargs: Any) -> list[str]:
        listed = custom.list_cluster_custom_object(ESO_GROUP, V1, ES, **kwargs)
        return [i["metadata"]["name"] for i in listed["items"]]

    assert [
        i["metadata"]["name"] for i in custom.list_namespaced_custom_object(ESO_GROUP, V1, NS, ES)["items"]
    ] == [
        "a",
        "b",
    ]
    assert names(label_selector="tier=db") == ["a", "c"]
    assert names(label_selector="tier==db,team") == ["a"]
    assert names(label_selector="tier!=db") == ["b"]
    assert names(label_selector="tier in (cache, db)") == ["a", "b", "c"]
    assert names(label_selector="tier notin (db)") == ["b"]
    assert names(label_selector="!team") == ["b", "c"]
    assert names(field_selector="metadata.name=b") == ["b"]
    assert names(field_selector="metadata.namespace!=apps") == ["c"]
    if twin.validating:  # the CRD's selectableFields
        assert names(field_selector="spec.target.name=c") == ["c"]


def test_pagination_with_limit_and_continue(twin: KubernetesTwin, custom: Any) -> None:
    for name in ["e", "d", "c", "b", "a"]:
        twin.put(external_secret(name))
    first = custom.list_namespaced_custom_object(ESO_GROUP, V1, NS, ES, limit=2)
    assert [i["metadata"]["name"] for i in first["items"]] == ["a", "b"]
    assert first["metadata"]["remainingItemCount"] == 3
    seen = [i["metadata"]["name"] for i in first["items"]]
    token = first["metadata"]["continue"]
    while token:
        page = custom.list_namespaced_custom_object(ESO_GROUP, V1, NS, ES, limit=2, _continue=token)
        assert page["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
        seen += [i["metadata"]["name"] for i in page["items"]]
        token = page["metadata"].get("continue")
    assert seen == ["a", "b", "c", "d", "e"]


def test_cluster_scoped_kinds_and_v1beta1(twin: KubernetesTwin, custom: Any) -> None:
    store = {
        "apiVersion": "external-secrets.io/v1",
        "kind": "ClusterSecretStore",
        "metadata": {"name": "vault"},
        "spec": {
            "provider": {
                "azurekv": {"vaultUrl": "https://kv.vault.azure.net", "authType": "WorkloadIdentity"}
            }
        },
    }
    created = custom.create_cluster_custom_object(ESO_GROUP, V1, "clustersecretstores", store)
    assert "namespace" not in created["metadata"]
    ces = {
        "apiVersion": "external-secrets.io/v1",
        "kind": "ClusterExternalSecret",
        "metadata": {"name": "shared"},
        "spec": {"externalSecretSpec": external_secret("x")["spec"], "namespaces": [NS]},
    }
    custom.create_cluster_custom_object(ESO_GROUP, V1, CES, ces)
    assert [
        i["metadata"]["name"] for i in custom.list_cluster_custom_object(ESO_GROUP, V1, CES)["items"]
    ] == ["shared"]

    old = custom.get_cluster_custom_object(ESO_GROUP, "v1beta1", "clustersecretstores", "vault")
    assert old["apiVersion"] == "external-secrets.io/v1beta1"  # the same object at the other version
    assert old["metadata"]["uid"] == created["metadata"]["uid"]


# -- core and apps ------------------------------------------------------------------------------


def test_secrets_create_read_list(api: Any) -> None:
    core = client.CoreV1Api(api)
    body = client.V1Secret(
        metadata=client.V1ObjectMeta(name="db-credentials", labels={"app": "db"}),
        string_data={"password": "s3cr3t"},
    )
    created = core.create_namespaced_secret(NS, body)
    assert created.data == {"password": "czNjcjN0"}
    assert created.string_data is None
    assert created.type == "Opaque"
    assert created.metadata.generation is None  # Secrets have no generation

    read = core.read_namespaced_secret("db-credentials", NS)
    assert read.metadata.uid == created.metadata.uid
    listed = core.list_namespaced_secret(NS, label_selector="app=db")
    assert [s.metadata.name for s in listed.items] == ["db-credentials"]
    everywhere = core.list_secret_for_all_namespaces(field_selector="type=Opaque")
    assert [s.metadata.name for s in everywhere.items] == ["db-credentials"]


@pytest.mark.parametrize(
    ("kind", "create", "read", "listing", "patch"),
    [
        ("Deployment", "create_namespaced_deployment", "read_namespaced_deployment",
         "list_namespaced_deployment", "patch_namespaced_deployment"),
        ("StatefulSet", "create_namespaced_stateful_set", "read_namespaced_stateful_set",
         "list_namespaced_stateful_set", "patch_namespaced_stateful_set"),
        ("DaemonSet", "create_namespaced_daemon_set", "read_namespaced_daemon_set",
         "list_namespaced_daemon_set", "patch_namespaced_daemon_set"),
    ],
)  # fmt: skip
def test_workloads_create_read_list_patch(
    twin: KubernetesTwin, api: Any, kind: str, create: str, read: str, listing: str, patch: str
) -> None:
    apps = client.AppsV1Api(api)
    created = getattr(apps, create)(NS, deployment("web", kind))
    assert created.kind == kind
    assert created.metadata.generation == 1
    assert getattr(apps, read)("web", NS).metadata.uid == created.metadata.uid
    assert [w.metadata.name for w in getattr(apps, listing)(NS).items] == ["web"]

    restart = {"spec": {"template": {"metadata": {"annotations": {"restartedAt": "2026-01-01T00:00:00Z"}}}}}
    patched = getattr(apps, patch)("web", NS, restart)
    assert patched.spec.template.metadata.annotations == {"restartedAt": "2026-01-01T00:00:00Z"}
    assert patched.metadata.generation == 2  # a template change is a spec change
    assert patched.spec.template.spec.containers[0].image == "registry.example/app:1.0"
    assert twin.requests[-1].content_type == "application/strategic-merge-patch+json"

    labelled = getattr(apps, patch)("web", NS, {"metadata": {"labels": {"owner": "team"}}})
    assert labelled.metadata.generation == 2  # labels are metadata


def test_deployment_annotations_bump_generation_as_the_real_strategy_does(api: Any) -> None:
    apps = client.AppsV1Api(api)
    apps.create_namespaced_deployment(NS, deployment("web"))
    patched = apps.patch_namespaced_deployment("web", NS, {"metadata": {"annotations": {"a": "b"}}})
    assert patched.metadata.generation == 2  # deploymentStrategy: annotations are copied to ReplicaSets


# -- concurrency, validation, generation, status -----------------------------------------------


def test_stale_resource_version_is_a_409_on_update_and_patch(
    twin: KubernetesTwin, custom: Any, api: Any
) -> None:
    first = custom.create_namespaced_custom_object(ESO_GROUP, V1, NS, ES, external_secret("db"))
    custom.patch_namespaced_custom_object(ESO_GROUP, V1, NS, ES, "db", {"metadata": {"labels": {"a": "1"}}})

    with pytest.raises(ApiException) as caught:
        custom.replace_namespaced_custom_object(ESO_GROUP, V1, NS, ES, "db", first)
    assert caught.value.status == 409
    assert status_of(caught.value)["reason"] == "Conflict"
    assert status_of(caught.value)["message"] == (
        'Operation cannot be fulfilled on externalsecrets.external-secrets.io "db": the object has been '
        "modified; please apply your changes to the latest version and try again"
    )

    stale = {"metadata": {"resourceVersion": first["metadata"]["resourceVersion"], "annotations": {"x": "1"}}}
    with pytest.raises(ApiException) as caught:
        custom.patch_namespaced_custom_object(ESO_GROUP, V1, NS, ES, "db", stale)
    assert caught.value.status == 409
    assert "x" not in (twin.get("external-secrets.io/v1", "ExternalSecret", NS, "db") or {})["metadata"].get(
        "annotations", {}
    )

    current = custom.get_namespaced_custom_object(ESO_GROUP, V1, NS, ES, "db")
    current["metadata"]["annotations"] = {"x": "1"}
    replaced = custom.replace_namespaced_custom_object(ESO_GROUP, V1, NS, ES, "db", current)
    assert replaced["metadata"]["annotations"] == {"x": "1"}

    core = client.CoreV1Api(api)
    secret = core.create_namespaced_secret(NS, {"metadata": {"name": "s"}, "stringData": {"k": "v"}})
    core.patch_namespaced_secret("s", NS, {"stringData": {"k": "w"}})
    with pytest.raises(ApiException) as caught:
        core.replace_namespaced_secret("s", NS, secret)
    assert caught.value.status == 409


def test_invalid_external_secret_is_a_422_naming_the_field(twin: KubernetesTwin, custom: Any) -> None:
    if not twin.validating:
        pytest.skip("the ESO CRDs (../shared/eso-crds) are not present")
    bad = external_secret("db", refreshPolicy="Bad")
    with pytest.raises(ApiException) as caught:
        custom.create_namespaced_custom_object(ESO_GROUP, V1, NS, ES, bad)
    assert caught.value.status == 422
    status = status_of(caught.value)
    assert status["reason"] == "Invalid"
    assert status["message"] == (
        'ExternalSecret.external-secrets.io "db" is invalid: spec.refreshPolicy: Unsupported value: "Bad": '
        'supported values: "CreatedOnce", "Periodic", "OnChange"'
    )
    assert status["details"]["causes"] == [
        {
            "reason": "FieldValueNotSupported",
            "message": 'Unsupported value: "Bad": supported values: "CreatedOnce", "Periodic", "OnChange"',
            "field": "spec.refreshPolicy",
        }
    ]

    twin.put(external_secret("ok"))
    with pytest.raises(ApiException) as caught:
        custom.patch_namespaced_custom_object(
            ESO_GROUP, V1, NS, ES, "ok", {"spec": {"data": [{"secretKey": "k"}], "refreshInterval": 5}}
        )
    assert caught.value.status == 422
    assert status_of(caught.value)["message"] == (
        'ExternalSecret.external-secrets.io "ok" is invalid: [spec.data[0].remoteRef: Required value, '
        'spec.refreshInterval: Invalid value: "integer": '
        "spec.refreshInterval in body must be of type string: "
        '"integer"]'
    )


def test_generation_follows_spec_changes_only(custom: Any) -> None:
    custom.create_namespaced_custom_object(ESO_GROUP, V1, NS, ES, external_secret("db"))
    labelled = custom.patch_namespaced_custom_object(
        ESO_GROUP, V1, NS, ES, "db", {"metadata": {"labels": {"a": "b"}, "annotations": {"c": "d"}}}
    )
    assert labelled["metadata"]["generation"] == 1
    changed = custom.patch_namespaced_custom_object(
        ESO_GROUP, V1, NS, ES, "db", {"spec": {"refreshInterval": "5m"}}
    )
    assert changed["metadata"]["generation"] == 2
    same = custom.patch_namespaced_custom_object(
        ESO_GROUP, V1, NS, ES, "db", {"spec": {"refreshInterval": "5m"}}
    )
    assert same["metadata"]["generation"] == 2
    assert same["metadata"]["resourceVersion"] == changed["metadata"]["resourceVersion"]  # a no-op write


def test_status_subresource_is_separate_from_the_main_resource(custom: Any) -> None:
    body = external_secret("db")
    body["status"] = {"refreshTime": "2026-01-01T00:00:00Z"}
    created = custom.create_namespaced_custom_object(ESO_GROUP, V1, NS, ES, body)
    assert "status" not in created  # create drops status

    ready = {"status": {"conditions": [{"type": "Ready", "status": "True", "reason": "SecretSynced"}]}}
    with_status = custom.patch_namespaced_custom_object_status(
        ESO_GROUP, V1, NS, ES, "db", {**ready, "spec": {"refreshInterval": "1m"}}
    )
    assert with_status["status"] == ready["status"]
    assert with_status["spec"] == created["spec"]  # the spec change was ignored
    assert with_status["metadata"]["generation"] == 1

    main = custom.patch_namespaced_custom_object(
        ESO_GROUP, V1, NS, ES, "db", {"status": {"conditions": []}, "metadata": {"labels": {"x": "y"}}}
    )
    assert main["status"] == ready["status"]  # status ignored by the main resource
    assert main["metadata"]["labels"] == {"x": "y"}
    assert (
        custom.get_namespaced_custom_object_status(ESO_GROUP, V1, NS, ES, "db")["status"] == ready["status"]
    )


# -- authentication and RBAC ---------------------------------------------------------------------


def test_without_a_valid_token_every_request_is_401(twin: KubernetesTwin) -> None:
    configuration = client.Configuration()
    configuration.host = twin.url
    configuration.ssl_ca_cert = str(twin.ca_path)
    configuration.proxy = None
    for token in (None, "not-a-token"):
        if token is not None:
            configuration.api_key = {"authorization": f"Bearer {token}"}
        with client.ApiClient(configuration) as api_client, pytest.raises(ApiException) as caught:
            client.CoreV1Api(api_client).list_namespace()
        assert caught.value.status == 401
        assert status_of(caught.value) == {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": "Unauthorized",
            "reason": "Unauthorized",
            "code": 401,
        }


def test_least_privilege_token_gets_exactly_its_rules(twin: KubernetesTwin) -> None:
    twin.put(external_secret("db"))
    twin.put(deployment("web"))
    twin.put({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": NS}})
    with twin.api_client(ROTATOR) as api_client:
        custom = client.CustomObjectsApi(api_client)
        assert [
            i["metadata"]["name"] for i in custom.list_cluster_custom_object(ESO_GROUP, V1, ES)["items"]
        ] == ["db"]
        custom.patch_namespaced_custom_object(
            ESO_GROUP, V1, NS, ES, "db", {"metadata": {"annotations": {"a": "1"}}}
        )
        assert client.AppsV1Api(api_client).read_namespaced_deployment("web", NS).metadata.name == "web"

        with pytest.raises(ApiException) as caught:
            client.CoreV1Api(api_client).read_namespaced_secret("db", NS)
        assert caught.value.status == 403
        assert status_of(caught.value) == {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": f'secrets "db" is forbidden: User "{ROTATOR_USER}" cannot get resource "secrets" '
            'in API group "" in the namespace "apps"',
            "reason": "Forbidden",
            "details": {"name": "db", "kind": "secrets"},
            "code": 403,
        }

        with pytest.raises(ApiException) as caught:
            custom.patch_namespaced_custom_object_status(ESO_GROUP, V1, NS, ES, "db", {"status": {}})
        assert status_of(caught.value)["message"] == (
            f'externalsecrets.external-secrets.io "db" is forbidden: User "{ROTATOR_USER}" cannot patch '
            'resource "externalsecrets/status" in API group "external-secrets.io" in the namespace "apps"'
        )
        with pytest.raises(ApiException) as caught:
            custom.delete_namespaced_custom_object(ESO_GROUP, V1, NS, ES, "db")
        assert caught.value.status == 403
        with pytest.raises(ApiException) as caught:
            client.AppsV1Api(api_client).patch_namespaced_deployment(
                "web", NS, {"metadata": {"labels": {"a": "b"}}}
            )
        assert status_of(caught.value)["message"] == (
            f'deployments.apps "web" is forbidden: User "{ROTATOR_USER}" cannot patch resource "deployments" '
            'in API group "apps" in the namespace "apps"'
        )
    assert twin.get("v1", "Secret", NS, "db") is not None


def test_namespaced_grant_does_not_reach_the_cluster_scope() -> None:
    rules = [PolicyRule(verbs=("list", "get"), api_groups=(ESO_GROUP,), resources=(ES,), namespaces=(NS,))]
    with KubernetesTwin(tokens={"ns-token": rules}) as twin, twin.api_client("ns-token") as api_client:
        custom = client.CustomObjectsApi(api_client)
        assert custom.list_namespaced_custom_object(ESO_GROUP, V1, NS, ES)["items"] == []
        with pytest.raises(ApiException) as caught:
            custom.list_cluster_custom_object(ESO_GROUP, V1, ES)
        assert status_of(caught.value)["message"] == (
            'externalsecrets.external-secrets.io is forbidden: User "twin-user-1" cannot list resource '
            '"externalsecrets" in API group "external-secrets.io" at the cluster scope'
        )


# -- kubeconfig and discovery -------------------------------------------------------------------


@pytest.fixture
def restore_default_configuration() -> Iterator[None]:
    original = client.Configuration.get_default_copy()
    yield
    client.Configuration.set_default(original)


@pytest.mark.usefixtures("restore_default_configuration")
def test_kubeconfig_works_with_load_kube_config(twin: KubernetesTwin) -> None:
    path = twin.kubeconfig(ROTATOR)
    assert path.stat().st_mode & 0o777 == 0o600
    config.load_kube_config(config_file=str(path))
    with client.ApiClient() as api_client:
        listed = client.CustomObjectsApi(api_client).list_cluster_custom_object(ESO_GROUP, V1, ES)
    assert listed["items"] == []
    assert twin.requests[-1].user == ROTATOR_USER
    _, active = config.list_kube_config_contexts(config_file=str(path))
    assert active["context"]["namespace"] == "default"


def test_discovery_serves_the_dynamic_client(twin: KubernetesTwin, api: Any) -> None:
    twin.put(external_secret("db"))
    groups = client.ApisApi(api).get_api_versions()
    eso = next(g for g in groups.groups if g.name == ESO_GROUP)
    assert eso.preferred_version.version == "v1"
    assert [v.version for v in eso.versions] == ["v1", "v1beta1"]
    assert client.VersionApi(api).get_code().major == "1"

    resources = dynamic.DynamicClient(api).resources
    external_secrets = resources.get(api_version="external-secrets.io/v1", kind="ExternalSecret")
    assert external_secrets.namespaced is True
    assert [i.metadata.name for i in external_secrets.get(namespace=NS).items] == ["db"]
    secrets = resources.get(api_version="v1", kind="Secret")
    assert secrets.get(namespace=NS).items == []
