"""The Kubernetes twin's ESO: ExternalSecrets synced from the Key Vault twin as ESO v2.9.0 does.

Each test arranges objects through the official ``kubernetes`` client (as the rotator and
``kubectl`` would), writes Key Vault values through the real ``SecretClient``, lets the
controllers settle, and checks what ESO documents (reference ``eso-and-reloader.md`` sections
1-2 and 4): the target Secret, its labels and annotations, the ExternalSecret's status, and
which annotation changes are honoured under each refresh policy. Expected hashes are
recomputed here from their definition (SHA3-224 of Go's ``%+v``), not with the twin's code.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from azure.keyvault.secrets import SecretClient
from kubernetes import client
from kubernetes.client.rest import ApiException

from tests.twins.k8s_helpers import (  # noqa: F401 - api_client, core_api and custom_api are fixtures
    NS,
    api_client,
    cluster_store,
    core_api,
    custom_api,
    external_secret,
    namespaced_cluster,
)
from twins.keyvault import KeyVaultTwin
from twins.kubernetes import ESO_GROUP, KubernetesTwin
from twins.kubernetes.controllers import Controllers
from twins.kubernetes.controllers.runtime import RecordedEvent

V1 = "v1"
ES = "externalsecrets"
FORCE_SYNC = "external-secrets.io/force-sync"
DATA_HASH = "reconcile.external-secrets.io/data-hash"
MANAGED = "reconcile.external-secrets.io/managed"
CREATED_BY = "reconcile.external-secrets.io/created-by"
FINALIZER = "externalsecrets.external-secrets.io/externalsecret-cleanup"


def sha3(text: str) -> str:
    return hashlib.sha3_224(text.encode()).hexdigest()


def go_bytes(value: bytes) -> str:
    return "[" + " ".join(str(byte) for byte in value) + "]"


def expected_data_hash(data: dict[str, bytes]) -> str:
    """ESO's ``ObjectHash(secret.Data)``: SHA3-224 of ``map[k:[bytes] ...]``, keys sorted."""
    return sha3("map[" + " ".join(f"{key}:{go_bytes(data[key])}" for key in sorted(data)) + "]")


def expected_synced_version(metadata: dict[str, Any]) -> str:
    """ESO's ``GetResourceVersion``: ``<generation>-`` + SHA3-224 of ``{annotations:map[] labels:map[]}``."""

    def go_map(values: dict[str, str] | None) -> str:
        return "map[" + " ".join(f"{key}:{(values or {})[key]}" for key in sorted(values or {})) + "]"

    meta = f"{{annotations:{go_map(metadata.get('annotations'))} labels:{go_map(metadata.get('labels'))}}}"
    return f"{metadata['generation']}-{sha3(meta)}"


def decoded(secret: Any) -> dict[str, bytes]:
    return {key: base64.b64decode(value) for key, value in (secret.data or {}).items()}


def ready(es: dict[str, Any]) -> dict[str, Any]:
    conditions = (es.get("status") or {}).get("conditions") or []
    return next(c for c in conditions if c["type"] == "Ready")


def unix(timestamp: str) -> float:
    return time.mktime(time.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ")) - time.timezone


@dataclass
class Eso:
    """The Key Vault client, the cluster's clients and the controllers, driven as a test would."""

    kv: SecretClient
    custom: client.CustomObjectsApi
    core: client.CoreV1Api
    controllers: Controllers

    def submit(self, body: dict[str, Any]) -> None:
        """Create an ExternalSecret through the client (without settling)."""
        self.custom.create_namespaced_custom_object(ESO_GROUP, V1, NS, ES, body)

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        """Create an ExternalSecret, let ESO settle, return it as read back."""
        self.submit(body)
        self.controllers.settle()
        return self.read(body["metadata"]["name"])

    def read(self, name: str = "db") -> dict[str, Any]:
        es: dict[str, Any] = self.custom.get_namespaced_custom_object(ESO_GROUP, V1, NS, ES, name)
        return es

    def patch(self, body: dict[str, Any], name: str = "db") -> None:
        """Patch the ExternalSecret and let ESO settle."""
        self.custom.patch_namespaced_custom_object(ESO_GROUP, V1, NS, ES, name, body)
        self.controllers.settle()

    def force_sync(self, value: str = "rotation-1", name: str = "db") -> None:
        self.patch({"metadata": {"annotations": {FORCE_SYNC: value}}}, name)

    def secret(self, name: str = "db") -> Any:
        return self.core.read_namespaced_secret(name, NS)

    def data(self, name: str = "db") -> dict[str, bytes]:
        return decoded(self.secret(name))

    def events(self, reason: str) -> list[RecordedEvent]:
        return [e for e in self.controllers.events if e.reason == reason]


@pytest.fixture
def vault(tmp_path: Path) -> Iterator[KeyVaultTwin]:
    with KeyVaultTwin(vault_name="kv-eso", cert_dir=tmp_path / "kv") as running:
        yield running


@pytest.fixture
def kv(vault: KeyVaultTwin) -> SecretClient:
    return vault.secret_client()


@pytest.fixture
def cluster(tmp_path: Path, vault: KeyVaultTwin) -> Iterator[KubernetesTwin]:
    with namespaced_cluster(tmp_path) as running:
        running.put(cluster_store(vault.url))
        yield running


@pytest.fixture
def controllers(cluster: KubernetesTwin, vault: KeyVaultTwin) -> Iterator[Controllers]:
    with Controllers(cluster, keyvault=vault, reloader=False, rollouts=False) as running:
        yield running


@pytest.fixture
def eso(
    kv: SecretClient, custom: client.CustomObjectsApi, core: client.CoreV1Api, controllers: Controllers
) -> Eso:
    return Eso(kv, custom, core, controllers)


@pytest.fixture
def synced(eso: Eso) -> dict[str, Any]:
    """``db-password`` is ``old`` in the vault and the ExternalSecret ``db`` has synced it."""
    eso.kv.set_secret("db-password", "old")
    return eso.create(external_secret("db"))


# -- first sync ------------------------------------------------------------------------------


def test_first_sync_writes_the_secret_and_the_status_as_eso(eso: Eso) -> None:
    eso.kv.set_secret("db-password", "s3cr3t")
    before = int(time.time())

    es = eso.create(external_secret("db"))

    secret = eso.secret()
    assert decoded(secret) == {"password": b"s3cr3t"}
    assert secret.type == "Opaque"
    assert secret.metadata.labels[MANAGED] == "true"
    assert secret.metadata.labels[CREATED_BY] == sha3(f"{NS}/db")
    assert secret.metadata.annotations[DATA_HASH] == expected_data_hash({"password": b"s3cr3t"})
    [owner] = secret.metadata.owner_references
    assert (owner.api_version, owner.kind, owner.name, owner.uid) == (
        f"{ESO_GROUP}/v1",
        "ExternalSecret",
        "db",
        es["metadata"]["uid"],
    )
    assert owner.controller and owner.block_owner_deletion

    status = es["status"]
    assert ready(es)["status"] == "True"
    assert (ready(es)["reason"], ready(es)["message"]) == ("SecretSynced", "secret synced")
    assert status["syncedResourceVersion"] == expected_synced_version(es["metadata"])
    assert status["binding"] == {"name": "db"}
    assert unix(status["refreshTime"]) >= before
    assert es["metadata"]["finalizers"] == [FINALIZER]


def test_stores_are_validated_as_eso_does(cluster: KubernetesTwin, controllers: Controllers) -> None:
    store = cluster.get(f"{ESO_GROUP}/v1", "ClusterSecretStore", None, "vault")
    assert store is not None
    [condition] = store["status"]["conditions"]
    assert (condition["type"], condition["status"], condition["reason"], condition["message"]) == (
        "Ready",
        "True",
        "Valid",
        "store validated",
    )
    assert store["status"]["capabilities"] == "ReadWrite"


def test_target_name_template_metadata_and_the_es_labels_copied(eso: Eso) -> None:
    eso.kv.set_secret("db-password", "pw")
    plain = external_secret("db")
    plain["metadata"]["labels"] = {"team": "payments"}
    eso.create(plain)
    assert eso.secret().metadata.labels["team"] == "payments"  # no template: copied

    templated = external_secret(
        "templated",
        target={
            "name": "templated-target",
            "template": {
                "type": "kubernetes.io/basic-auth",
                "metadata": {"annotations": {"reloader.stakater.com/match": "true"}},
            },
        },
        data=[{"secretKey": "password", "remoteRef": {"key": "db-password"}}],
    )
    templated["metadata"]["labels"] = {"team": "payments"}
    es = eso.create(templated)
    secret = eso.secret("templated-target")
    assert secret.type == "kubernetes.io/basic-auth"
    assert secret.metadata.annotations["reloader.stakater.com/match"] == "true"
    assert "team" not in secret.metadata.labels  # a template replaces the ES's own metadata
    assert es["status"]["binding"] == {"name": "templated-target"}


def test_property_extract_and_find_read_the_vault_as_the_azurekv_provider(eso: Eso) -> None:
    eso.kv.set_secret("db-json", '{"user": "app", "password": "pw", "port": 5432}')
    eso.kv.set_secret("db-a", "a-value", tags={"rotation": "managed"})
    eso.kv.set_secret("db-b", "b-value")
    eso.kv.set_secret("other", "other-value", tags={"rotation": "managed"})
    eso.kv.set_secret("db-c", "c-value", tags={"rotation": "managed"}, enabled=False)
    body = external_secret(
        "mixed",
        data=[
            {"secretKey": "login", "remoteRef": {"key": "secret/db-json", "property": "user"}},
            {"secretKey": "password", "remoteRef": {"key": "db-b"}},
        ],
        dataFrom=[
            {"extract": {"key": "db-json"}},
            {"find": {"name": {"regexp": "^db-"}, "tags": {"rotation": "managed"}}},
        ],
    )

    es = eso.create(body)

    assert ready(es)["reason"] == "SecretSynced"
    assert eso.data("mixed") == {
        "login": b"app",
        "user": b"app",
        "password": b"b-value",  # data is applied after dataFrom
        "port": b"5432",
        "db-a": b"a-value",  # find: tags and name ANDed, disabled secrets skipped
    }


def test_a_pinned_version_reads_that_version(eso: Eso) -> None:
    first = eso.kv.set_secret("db-password", "v1")
    eso.kv.set_secret("db-password", "v2")
    body = external_secret("db")
    body["spec"]["data"][0]["remoteRef"]["version"] = first.properties.version

    eso.create(body)

    assert eso.data() == {"password": b"v1"}


# -- force-sync and refresh policies -----------------------------------------------------------


def test_force_sync_annotation_resyncs_the_new_key_vault_value(eso: Eso, synced: dict[str, Any]) -> None:
    hash_before = eso.secret().metadata.annotations[DATA_HASH]
    eso.kv.set_secret("db-password", "new")
    eso.controllers.settle()
    assert eso.data() == {"password": b"old"}  # ESO polls, KV pushes nothing

    patched_at = int(time.time())
    eso.force_sync("rotation-1")

    es = eso.read()
    secret = eso.secret()
    assert decoded(secret) == {"password": b"new"}
    assert secret.metadata.annotations[DATA_HASH] == expected_data_hash({"password": b"new"}) != hash_before
    assert secret.metadata.annotations[FORCE_SYNC] == "rotation-1"  # ES annotations are copied
    status = es["status"]
    assert status["syncedResourceVersion"] != synced["status"]["syncedResourceVersion"]
    assert status["syncedResourceVersion"] == expected_synced_version(es["metadata"])
    assert status["syncedResourceVersion"].startswith(f"{es['metadata']['generation']}-")
    assert (ready(es)["status"], ready(es)["reason"]) == ("True", "SecretSynced")
    assert unix(status["refreshTime"]) >= patched_at
    assert [e.reason for e in eso.controllers.events if e.kind == "ExternalSecret"] == ["Created", "Updated"]


@pytest.mark.parametrize(
    ("spec", "after", "unchanged"),
    [
        ({"refreshPolicy": "CreatedOnce"}, b"old", "status"),  # the skip path leaves the status alone
        ({"refreshInterval": "0"}, b"old", "syncedResourceVersion"),  # Periodic with interval zero
        ({"refreshInterval": "0s"}, b"old", "syncedResourceVersion"),
        ({"refreshPolicy": "OnChange", "refreshInterval": "0s"}, b"new", None),  # OnChange honours it
    ],
    ids=["created-once", "periodic-interval-0", "periodic-interval-0s", "on-change-interval-0s"],
)
def test_force_sync_under_each_refresh_policy(
    spec: dict[str, str], after: bytes, unchanged: str | None, eso: Eso
) -> None:
    eso.kv.set_secret("db-password", "old")
    es = eso.create(external_secret("db", **spec))
    eso.kv.set_secret("db-password", "new")

    eso.force_sync("rotation-1")

    assert eso.data() == {"password": after}
    if unchanged == "status":
        assert eso.read()["status"] == es["status"]
    elif unchanged is not None:
        assert eso.read()["status"][unchanged] == es["status"][unchanged]


def test_spec_change_resyncs_and_the_version_carries_the_new_generation(eso: Eso) -> None:
    eso.kv.set_secret("db-password", "pw")
    eso.kv.set_secret("db-user", "app")
    eso.create(external_secret("db"))

    eso.patch({"spec": {"data": [{"secretKey": "user", "remoteRef": {"key": "db-user"}}]}})

    es = eso.read()
    assert es["metadata"]["generation"] == 2
    assert es["status"]["syncedResourceVersion"].startswith("2-")
    assert eso.data() == {"user": b"app"}


def test_periodic_refresh_waits_for_the_interval(
    cluster: KubernetesTwin, vault: KeyVaultTwin, kv: SecretClient, custom: client.CustomObjectsApi,
    core: client.CoreV1Api,
) -> None:  # fmt: skip
    now = [time.time()]
    with Controllers(
        cluster, keyvault=vault, reloader=False, rollouts=False, clock=lambda: now[0]
    ) as controllers:
        eso = Eso(kv, custom, core, controllers)
        kv.set_secret("db-password", "old")
        first = eso.create(external_secret("db", refreshInterval="1m"))["status"]["refreshTime"]
        kv.set_secret("db-password", "new")

        for step, expected in ((30, b"old"), (31, b"new")):
            now[0] += step
            controllers.tick()
            controllers.settle()
            assert eso.data() == {"password": expected}
        assert unix(eso.read()["status"]["refreshTime"]) - unix(first) >= 60


# -- failures ------------------------------------------------------------------------------------


def test_missing_key_vault_secret_fails_as_eso_and_keeps_the_secret(eso: Eso, synced: dict[str, Any]) -> None:
    secret_before = eso.secret()
    eso.kv.begin_delete_secret("db-password").wait()

    eso.force_sync("rotation-1")

    after = eso.read()
    condition = ready(after)
    assert (condition["status"], condition["reason"], condition["message"]) == (
        "False",
        "SecretSyncedError",
        "could not get secret data from provider",
    )
    assert condition["lastTransitionTime"] >= ready(synced)["lastTransitionTime"]
    assert after["status"]["refreshTime"] == synced["status"]["refreshTime"]
    assert after["status"]["syncedResourceVersion"] == synced["status"]["syncedResourceVersion"]
    secret_after = eso.secret()
    assert secret_after.data == secret_before.data
    assert secret_after.metadata.resource_version == secret_before.metadata.resource_version
    failed = eso.events("UpdateFailed")
    assert failed and failed[-1].type == "Warning"
    assert (
        failed[-1].message == "error processing spec.data[0] (key: db-password), err: Secret does not exist"
    )


def test_missing_secret_is_skipped_when_deletion_policy_is_not_retain(eso: Eso) -> None:
    eso.kv.set_secret("db-user", "app")
    body = external_secret(
        "db",
        target={"deletionPolicy": "Merge"},
        data=[
            {"secretKey": "user", "remoteRef": {"key": "db-user"}},
            {"secretKey": "password", "remoteRef": {"key": "not-there"}},
        ],
    )

    es = eso.create(body)

    assert ready(es)["reason"] == "SecretSynced"
    assert eso.data() == {"user": b"app"}
    assert [e.message for e in eso.events("MissingProviderSecret")] == [
        "secret does not exist at provider using spec.dataFrom[1] (key=not-there)"
    ]


@pytest.mark.parametrize(
    ("store_ref", "detail"),
    [
        ({"name": "nope", "kind": "SecretStore"},
         'could not get SecretStore "nope", secretstores.external-secrets.io "nope" not found'),
        ({"name": "nope", "kind": "ClusterSecretStore"},
         'could not get ClusterSecretStore "nope", clustersecretstores.external-secrets.io "nope" not found'),
        ({"name": "elsewhere", "kind": "ClusterSecretStore"},
         "vault 'https://kv-elsewhere.vault.azure.net/' cannot be reached from the Kubernetes twin"),
    ],
    ids=["secret-store", "cluster-secret-store", "unknown-vault"],
)  # fmt: skip
def test_a_store_that_cannot_read_fails_the_sync(
    store_ref: dict[str, str], detail: str, cluster: KubernetesTwin, eso: Eso
) -> None:
    cluster.put(cluster_store("https://kv-elsewhere.vault.azure.net/", name="elsewhere"))
    eso.controllers.settle()
    eso.kv.set_secret("db-password", "pw")

    es = eso.create(external_secret("db", secretStoreRef=store_ref))

    assert (ready(es)["status"], ready(es)["reason"], ready(es)["message"]) == (
        "False",
        "SecretSyncedError",
        "could not get secret data from provider",
    )
    assert es["status"]["refreshTime"] is None and "syncedResourceVersion" not in es["status"]
    with pytest.raises(ApiException) as missing:
        eso.secret()
    assert missing.value.status == 404
    assert detail in eso.events("UpdateFailed")[-1].message


def test_a_secret_owned_by_another_external_secret_is_not_taken(eso: Eso) -> None:
    eso.kv.set_secret("db-password", "pw")
    eso.create(external_secret("db", target={"name": "shared"}))

    es = eso.create(external_secret("db2", target={"name": "shared"}, data=[
        {"secretKey": "password", "remoteRef": {"key": "db-password"}}]))  # fmt: skip

    assert (ready(es)["status"], ready(es)["message"]) == (
        "False",
        "target is owned by another ExternalSecret",
    )
    [owner] = eso.secret("shared").metadata.owner_references
    assert owner.name == "db"


# -- the Secret after the sync -------------------------------------------------------------------


def test_an_edited_secret_is_restored_from_the_vault(eso: Eso, synced: dict[str, Any]) -> None:
    eso.core.patch_namespaced_secret("db", NS, {"data": {"password": base64.b64encode(b"tampered").decode()}})
    eso.controllers.settle()

    assert eso.data() == {"password": b"old"}
    assert eso.read()["status"]["refreshTime"] >= synced["status"]["refreshTime"]


def test_deleting_the_external_secret_releases_the_finalizer_and_collects_its_secret(
    eso: Eso, synced: dict[str, Any]
) -> None:
    eso.custom.delete_namespaced_custom_object(ESO_GROUP, V1, NS, ES, "db")
    eso.controllers.settle()

    for read in (eso.read, eso.secret):
        with pytest.raises(ApiException) as gone:
            read()
        assert gone.value.status == 404


# -- vault URLs and store conditions -----------------------------------------------------------


def test_a_production_vault_url_can_be_served_by_the_key_vault_twin(
    cluster: KubernetesTwin, vault: KeyVaultTwin, kv: SecretClient, custom: client.CustomObjectsApi,
    core: client.CoreV1Api,
) -> None:  # fmt: skip
    cluster.put(cluster_store("https://kv-payments-prod.vault.azure.net", name="prod"))
    kv.set_secret("db-password", "pw")
    with Controllers(cluster, keyvault={"https://KV-Payments-Prod.vault.azure.net/": vault}) as controllers:
        eso = Eso(kv, custom, core, controllers)
        eso.create(external_secret("db", secretStoreRef={"name": "prod", "kind": "ClusterSecretStore"}))

    assert eso.data() == {"password": b"pw"}


def test_cluster_store_conditions_restrict_namespaces(
    cluster: KubernetesTwin, vault: KeyVaultTwin, eso: Eso
) -> None:
    restricted = cluster_store(vault.url, name="restricted")
    restricted["spec"]["conditions"] = [{"namespaceSelector": {"matchLabels": {"team": "payments"}}}]
    cluster.put(restricted)
    eso.controllers.settle()
    eso.kv.set_secret("db-password", "pw")

    es = eso.create(
        external_secret("db", secretStoreRef={"name": "restricted", "kind": "ClusterSecretStore"})
    )

    assert ready(es)["message"] == "could not get secret data from provider"
    assert eso.events("UpdateFailed")[-1].message.endswith(
        'using cluster store "restricted" is not allowed from namespace "apps": denied by spec.condition'
    )


def test_metadata_policy_fetch_reads_tags_and_attributes(eso: Eso) -> None:
    stored = eso.kv.set_secret("db-password", "pw", tags={"rotation": "managed", "owner": "payments"})
    body = external_secret(
        "meta",
        data=[
            {
                "secretKey": "rot",
                "remoteRef": {"key": "db-password", "metadataPolicy": "Fetch", "property": "rotation"},
            }
        ],
        dataFrom=[{"extract": {"key": "db-password", "metadataPolicy": "Fetch"}}],
    )

    eso.create(body)

    created = stored.properties.created_on
    assert created is not None
    assert eso.data("meta") == {
        "rot": b"managed",
        "db-password_rotation": b"managed",
        "db-password_owner": b"payments",
        "db-password_attribute.created": created.strftime("%Y-%m-%dT%H:%M:%SZ").encode(),
        "db-password_attribute.updated": created.strftime("%Y-%m-%dT%H:%M:%SZ").encode(),
    }
