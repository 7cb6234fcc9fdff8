"""Which ExternalSecrets a rotation refreshes: the matching table, Go regexps, and properties.

Every fixture object here is plain JSON as the API server or a YAML file gives it;
``test_matching_manifests.py`` checks the well-formed ones (:func:`valid_objects`) against ESO's
CRD schemas, so the table cannot drift from what a cluster accepts.
"""

from __future__ import annotations

import itertools
import random
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rotation.propagation.goregexp import MAX_HEIGHT, compile_go
from rotation.propagation.matching import Verdict, match, parse_go_duration
from rotation.propagation.stores import normalise_vault_url

VAULT = "https://kv-prod.vault.azure.net"
OTHER_VAULT = "https://kv-other.vault.azure.net"
V1 = "external-secrets.io/v1"
SECRET = "db"
TAGS = {"rotation": "managed", "env": "prod"}
Obj = dict[str, Any]


def azurekv(vault: str) -> Obj:
    return {"azurekv": {"vaultUrl": vault, "authType": "WorkloadIdentity",
                        "serviceAccountRef": {"name": "eso-kv-reader", "namespace": "external-secrets"}}}


def cluster_store(name: str, vault: str, conditions: list[Obj] | None = None) -> Obj:
    spec: Obj = {"provider": azurekv(vault)}
    if conditions is not None:
        spec["conditions"] = conditions
    return {"apiVersion": V1, "kind": "ClusterSecretStore", "metadata": {"name": name}, "spec": spec}


def store(namespace: str, name: str, vault: str) -> Obj:
    return {"apiVersion": V1, "kind": "SecretStore", "metadata": {"name": name, "namespace": namespace},
            "spec": {"provider": azurekv(vault)}}


def namespace(name: str, **labels: str) -> Obj:
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name, **labels}}}


def item(key: str, **remote: str) -> Obj:
    return {"secretKey": "value", "remoteRef": {"key": key, **remote}}


def spec(*items: Obj, data_from: list[Obj] | None = None, store_name: str = "kv",
         kind: str | None = "ClusterSecretStore", **extra: Any) -> Obj:
    ref: Obj = {"name": store_name}
    if kind is not None:
        ref["kind"] = kind
    body: Obj = {"secretStoreRef": ref, **extra}
    if items:
        body["data"] = list(items)
    if data_from:
        body["dataFrom"] = data_from
    return body


def es(name: str, body: Obj, ns: str = "team-a", api: str = V1, owner: str | None = None) -> Obj:
    meta: Obj = {"name": name, "namespace": ns}
    if owner is not None:
        meta["ownerReferences"] = [{"apiVersion": V1, "kind": "ClusterExternalSecret", "name": owner,
                                    "uid": "6f1c1d4e-0000-4000-8000-000000000001", "controller": True,
                                    "blockOwnerDeletion": True}]
    return {"apiVersion": api, "kind": "ExternalSecret", "metadata": meta, "spec": body}


def ces(name: str, body: Obj, **extra: Any) -> Obj:
    status = extra.pop("status", None)
    obj: Obj = {"apiVersion": V1, "kind": "ClusterExternalSecret", "metadata": {"name": name},
                "spec": {"externalSecretSpec": body, **extra}}
    if status is not None:
        obj["status"] = status
    return obj


# The cluster every table case lives in: stores of each kind, two namespaces holding a
# SecretStore of the same name on different vaults, ClusterSecretStores restricted three ways.
WORLD: list[Obj] = [
    cluster_store("kv", VAULT),
    cluster_store("kv-other", OTHER_VAULT),
    cluster_store("kv-spelled", "HTTPS://KV-Prod.Vault.Azure.NET:443/"),
    cluster_store("kv-by-name", VAULT, [{"namespaces": ["team-a"]}]),
    cluster_store("kv-by-regex", VAULT, [{"namespaceRegexes": ["^team-a$"]}]),
    cluster_store("kv-by-label", VAULT, [{"namespaceSelector": {"matchLabels": {"team": "payments"}}}]),
    store("team-a", "kv-local", VAULT),
    store("team-b", "kv-local", OTHER_VAULT),
    {"apiVersion": V1, "kind": "SecretStore", "metadata": {"name": "hashicorp", "namespace": "team-a"},
     "spec": {"provider": {"vault": {"server": "https://vault.example.invalid", "path": "secret",
                                     "auth": {"tokenSecretRef": {"name": "t", "key": "token"}}}}}},
    namespace("team-a", team="payments"),
    namespace("team-b", team="web"),
]

CHILD_OWNER = "shared-db"


@dataclass(frozen=True)
class Case:
    """One row: objects added to WORLD, whose verdict is checked, and what it must say."""

    id: str
    objects: tuple[Obj, ...]
    action: str
    fragment: str  # a part of the reason
    subject: tuple[str, str, str] | None = None  # (namespace, kind, name); default the first object
    secret: str = SECRET
    extra: dict[str, str] = field(default_factory=dict)  # expected Verdict fields

    def key(self) -> tuple[str, str, str]:
        if self.subject is not None:
            return self.subject
        meta = self.objects[0]["metadata"]
        return meta.get("namespace", ""), self.objects[0]["kind"], meta["name"]


def find(**body: Any) -> Obj:
    return {"find": body}


TABLE: list[Case] = [
    # -- annotate: every reference form, each store kind
    Case("key plain name", (es("a1", spec(item("db"))),), "annotate",
         "spec.data[0].remoteRef.key 'db' reads it through ClusterSecretStore/kv",
         extra={"store": "ClusterSecretStore/kv", "target_secret": "a1"}),
    Case("key secret/ prefix", (es("a2", spec(item("secret/db"))),), "annotate", "'secret/db' reads it"),
    Case("key case-insensitive", (es("a3", spec(item("secret/DB"))),), "annotate", "'secret/DB' reads it"),
    Case("key extra path ignored", (es("a4", spec(item("secret/db/v2"))),), "annotate", "reads it"),
    Case("metadataPolicy Fetch", (es("a5", spec(item("db", metadataPolicy="Fetch"))),), "annotate",
         "reads its tags and attributes"),
    Case("extract", (es("a6", spec(data_from=[{"extract": {"key": "db"}}])),), "annotate",
         "spec.dataFrom[0].extract.key 'db' reads it"),
    Case("find by name", (es("a7", spec(data_from=[find(name={"regexp": "^db$"})])),), "annotate",
         "spec.dataFrom[0].find selects it by name.regexp '^db$'"),
    Case("find by tags", (es("a8", spec(data_from=[find(tags={"rotation": "managed"})])),), "annotate",
         "selects it by 1 tag(s)"),
    Case("find by name and tags",
         (es("a9", spec(data_from=[find(name={"regexp": "d"}, tags=TAGS)])),), "annotate",
         "by name.regexp 'd' and 2 tag(s)"),
    Case("find everything", (es("a10", spec(data_from=[find()])),), "annotate",
         "has neither name.regexp nor tags, so it reads every secret in the vault"),
    Case("SecretStore by default kind", (es("a11", spec(item("db"), store_name="kv-local", kind=None)),),
         "annotate", "through team-a/SecretStore/kv-local", extra={"store": "team-a/SecretStore/kv-local"}),
    Case("SecretStore explicit", (es("a12", spec(item("db"), store_name="kv-local", kind="SecretStore")),),
         "annotate", "through team-a/SecretStore/kv-local"),
    Case("vault URL spelled differently", (es("a13", spec(item("db"), store_name="kv-spelled")),),
         "annotate", "through ClusterSecretStore/kv-spelled"),
    Case("data sourceRef overrides the ES store",
         (es("a14", spec({**item("db"), "sourceRef": {"storeRef": {"name": "kv",
                                                                   "kind": "ClusterSecretStore"}}},
                         store_name="kv-other")),), "annotate", "through ClusterSecretStore/kv"),
    Case("dataFrom sourceRef overrides the ES store",
         (es("a15", spec(data_from=[{"extract": {"key": "db"},
                                     "sourceRef": {"storeRef": {"name": "kv-local", "kind": "SecretStore"}}}],
                         store_name="kv-other")),), "annotate", "through team-a/SecretStore/kv-local"),
    Case("OnChange honours force-sync whatever the interval",
         (es("a16", spec(item("db"), refreshPolicy="OnChange", refreshInterval="0s")),), "annotate",
         "reads it"),
    Case("Periodic with an interval", (es("a17", spec(item("db"), refreshPolicy="Periodic",
                                                       refreshInterval="15m30s")),), "annotate", "reads it"),
    Case("target name", (es("a18", spec(item("db"), target={"name": "payments-db"})),), "annotate",
         "reads it", extra={"target_secret": "payments-db"}),
    Case("ClusterSecretStore allows the namespace by name",
         (es("a19", spec(item("db"), store_name="kv-by-name")),), "annotate",
         "through ClusterSecretStore/kv-by-name"),
    Case("ClusterSecretStore allows the namespace by regex",
         (es("a20", spec(item("db"), store_name="kv-by-regex")),), "annotate", "kv-by-regex"),
    Case("ClusterSecretStore allows the namespace by label",
         (es("a21", spec(item("db"), store_name="kv-by-label")),), "annotate", "kv-by-label"),
    Case("v1beta1 where still served", (es("a22", spec(item("db")), api="external-secrets.io/v1beta1"),),
         "annotate", "reads it"),
    # -- strongest wins
    Case("pinned and unpinned: annotate wins",
         (es("w1", spec(item("db", version="0f" * 16), item("secret/db"))),), "annotate",
         "spec.data[1].remoteRef.key 'secret/db' reads it"),
    Case("another vault and pinned: report wins",
         (es("w2", spec({**item("db"), "sourceRef": {"storeRef": {"name": "kv-other",
                                                                  "kind": "ClusterSecretStore"}}},
                        item("db", version="0f" * 16))),), "report", "pinned to a version"),
    Case("no reference among many", (es("w3", spec(item("db-admin"), item("db2"),
                                                  data_from=[find(name={"regexp": "^x"})])),),
         "skip", "no reference to 'db': spec.data[0].remoteRef.key 'db-admin' names another object"),
    # -- report
    Case("pinned", (es("r1", spec(item("db", version="0f" * 16))),), "report",
         "pinned to a version: spec.data[0].remoteRef.version '0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f' fixes what "
         "spec.data[0].remoteRef.key 'db' reads through ClusterSecretStore/kv"),
    Case("CreatedOnce", (es("r2", spec(item("db"), refreshPolicy="CreatedOnce")),), "report",
         "force-sync does nothing here: spec.refreshPolicy is CreatedOnce"),
    Case("refreshInterval 0", (es("r3", spec(item("db"), refreshInterval="0")),), "report",
         "force-sync does nothing here: spec.refreshInterval is '0' under the default Periodic"),
    Case("refreshInterval 0s with Periodic", (es("r4", spec(item("db"), refreshPolicy="Periodic",
                                                             refreshInterval="0s")),), "report",
         "is '0s' under the Periodic refreshPolicy"),
    Case("regexp Go refuses", (es("r5", spec(data_from=[find(name={"regexp": "^(?!admin)db"})])),), "report",
         "spec.dataFrom[0].find.name.regexp '^(?!admin)db' is not a valid Go regexp (invalid perl operator: "
         "(?!): Go refuses it, so ESO's find selects nothing"),
    Case("regexp Go accepts but is not evaluated",
         (es("r6", spec(data_from=[find(name={"regexp": r"\p{Greek}"})])),), "report",
         r"'\\p{Greek}' cannot be evaluated here (Unicode class \p{Greek}: only general categories"),
    # -- skip
    Case("another vault", (es("s1", spec(item("db"), store_name="kv-other")),), "skip",
         "its store ClusterSecretStore/kv-other points at another vault ('https://kv-other.vault.azure.net')"),
    Case("same store name, other namespace, other vault",
         (es("s2", spec(item("db"), store_name="kv-local", kind=None), ns="team-b"),), "skip",
         "its store team-b/SecretStore/kv-local points at another vault"),
    Case("similar name db-admin", (es("s3", spec(item("db-admin"))),), "skip",
         "no reference to 'db': spec.data[0].remoteRef.key 'db-admin' names another object"),
    Case("similar name secret/db-admin", (es("s4", spec(item("secret/db-admin"))),), "skip", "no reference"),
    Case("regexp that misses", (es("s5", spec(data_from=[find(name={"regexp": "^db-"})])),), "skip",
         "spec.dataFrom[0].find.name.regexp '^db-' does not match it"),
    Case("find tags differ", (es("s6", spec(data_from=[find(tags={"rotation": "manual"})])),), "skip",
         "spec.dataFrom[0].find.tags differ from its tags on 'rotation'"),
    Case("name matches but tags do not (ANDed)",
         (es("s7", spec(data_from=[find(name={"regexp": "db"}, tags={"team": "x"})])),), "skip",
         "find.tags differ"),
    Case("certificate", (es("s8", spec(item("cert/db"))),), "skip",
         "not a secret: spec.data[0].remoteRef.key 'cert/db' reads the certificate of that name"),
    Case("key", (es("s9", spec(item("key/db"))),), "skip", "reads the key of that name"),
    Case("unknown object type", (es("s10", spec(item("blob/db"))),), "skip", "object type 'blob'"),
    Case("object type is case-sensitive", (es("s11", spec(item("Secret/db"))),), "skip",
         "object type 'Secret'"),
    Case("store not among the objects", (es("s12", spec(item("db"), store_name="nowhere")),), "skip",
         "its store ClusterSecretStore/nowhere is not among the given objects"),
    Case("store of another provider",
         (es("s13", spec(item("db"), store_name="hashicorp", kind="SecretStore")),), "skip",
         "its store team-a/SecretStore/hashicorp is not an Azure Key Vault store (provider 'vault')"),
    Case("generator", (es("s14", spec(data_from=[{"sourceRef": {"generatorRef": {
        "apiVersion": "generators.external-secrets.io/v1alpha1", "kind": "Password", "name": "pw"}}}])),),
         "skip", "spec.dataFrom[0].sourceRef.generatorRef is a generator, not Key Vault"),
    Case("ClusterSecretStore refuses the namespace by name",
         (es("s15", spec(item("db"), store_name="kv-by-name"), ns="team-b"),), "skip",
         "ClusterSecretStore/kv-by-name does not allow namespace 'team-b' (spec.conditions)"),
    Case("ClusterSecretStore refuses the namespace by label",
         (es("s16", spec(item("db"), store_name="kv-by-label"), ns="team-b"),), "skip", "does not allow"),
    # -- ClusterExternalSecrets and their children
    Case("CES on a ClusterSecretStore", (ces(CHILD_OWNER, spec(item("db")), namespaces=["team-a"]),),
         "annotate",
         "spec.externalSecretSpec.data[0].remoteRef.key 'db' reads it through ClusterSecretStore/kv",
         subject=("", "ClusterExternalSecret", CHILD_OWNER), extra={"target_secret": CHILD_OWNER}),
    Case("CES child", (ces(CHILD_OWNER, spec(item("db"))),
                       es(CHILD_OWNER, spec(item("db")), owner=CHILD_OWNER)), "annotate-parent",
         "ClusterExternalSecret 'shared-db' controls it and rewrites its annotations, so annotate the CES",
         subject=("team-a", "ExternalSecret", CHILD_OWNER), extra={"parent": CHILD_OWNER}),
    Case("CES child that is pinned is still reported",
         (es("c1", spec(item("db", version="0f" * 16)), owner=CHILD_OWNER),), "report", "pinned",
         extra={"parent": CHILD_OWNER}),
    Case("CES on a SecretStore, target namespaces unknown",
         (ces("c2", spec(item("db"), store_name="kv-local", kind="SecretStore")),), "report",
         "SecretStore 'kv-local' resolves in each target namespace and none is known",
         subject=("", "ClusterExternalSecret", "c2")),
    Case("CES on a SecretStore, namespaces listed",
         (ces("c3", spec(item("db"), store_name="kv-local", kind="SecretStore"), namespaces=["team-a"]),),
         "annotate", "through team-a/SecretStore/kv-local", subject=("", "ClusterExternalSecret", "c3")),
    Case("CES on a SecretStore, namespace provisioned on another vault",
         (ces("c4", spec(item("db"), store_name="kv-local", kind="SecretStore"),
              status={"provisionedNamespaces": ["team-b"]}),),
         "skip", "team-b/SecretStore/kv-local points at another vault",
         subject=("", "ClusterExternalSecret", "c4")),
    Case("CES on a SecretStore, namespaces selected by label",
         (ces("c5", spec(item("db"), store_name="kv-local", kind="SecretStore"),
              namespaceSelectors=[{"matchExpressions": [{"key": "team", "operator": "In",
                                                         "values": ["payments"]}]}]),),
         "annotate", "team-a/SecretStore/kv-local", subject=("", "ClusterExternalSecret", "c5")),
    Case("CES on a SecretStore, namespace known from a child",
         (ces("c6", spec(item("db"), store_name="kv-local", kind="SecretStore")),
          es("c6", spec(item("db"), store_name="kv-local", kind="SecretStore"), owner="c6")),
         "annotate", "team-a/SecretStore/kv-local", subject=("", "ClusterExternalSecret", "c6")),
    Case("CES with CreatedOnce", (ces("c7", spec(item("db"), refreshPolicy="CreatedOnce")),), "report",
         "spec.externalSecretSpec.refreshPolicy is CreatedOnce", subject=("", "ClusterExternalSecret", "c7")),
    Case("CES externalSecretName and target", (ces("c8", spec(item("db")), externalSecretName="child"),),
         "annotate", "reads it", subject=("", "ClusterExternalSecret", "c8"),
         extra={"target_secret": "child"}),
]

# Objects an API server would refuse (wrong types, missing required fields): files can hold them.
MALFORMED: list[Case] = [
    Case("unsupported apiVersion", (es("m0", spec(item("db")), api="external-secrets.io/v1alpha1"),), "skip",
         "apiVersion 'external-secrets.io/v1alpha1' is not supported"),
    Case("data not a list", (es("m1", {**spec(), "data": "db"}),), "skip",
         "malformed: spec.data is not a list"),
    Case("key not a string", (es("m2", spec({"secretKey": "v", "remoteRef": {"key": 7}})),), "skip",
         "malformed: spec.data[0].remoteRef.key is not a string"),
    Case("remoteRef missing", (es("m3", spec({"secretKey": "v"})),), "skip",
         "malformed: spec.data[0].remoteRef is missing"),
    Case("item not an object", (es("m4", spec(data_from=["db"])),), "skip",
         "malformed: spec.dataFrom[0] is not an object"),
    Case("empty dataFrom item", (es("m5", spec(data_from=[{}])),), "skip",
         "spec.dataFrom[0] has none of find, extract or sourceRef.generatorRef"),
    Case("no data at all", (es("m6", spec()),), "skip", "spec has neither data nor dataFrom"),
    Case("spec missing", ({"apiVersion": V1, "kind": "ExternalSecret",
                           "metadata": {"name": "m7", "namespace": "team-a"}},), "skip",
         "malformed: spec is missing"),
    Case("spec not an object", ({"apiVersion": V1, "kind": "ExternalSecret",
                                 "metadata": {"name": "m8", "namespace": "team-a"}, "spec": []},), "skip",
         "malformed: spec is not an object"),
    Case("name missing", ({"apiVersion": V1, "kind": "ExternalSecret", "metadata": {"namespace": "team-a"},
                           "spec": spec(item("db"))},), "skip", "malformed: metadata.name is missing",
         subject=("team-a", "ExternalSecret", "")),
    Case("apiVersion missing",
         ({"kind": "ExternalSecret", "metadata": {"name": "m9", "namespace": "team-a"}},), "skip",
         "malformed: apiVersion is missing"),
    Case("store kind unknown", (es("m10", spec(item("db"), kind="Vault")),), "skip",
         "malformed: spec.secretStoreRef.kind 'Vault' is neither SecretStore nor ClusterSecretStore"),
    Case("no store reference", (es("m11", {"data": [item("db")]}),), "skip",
         "it names no store (spec.secretStoreRef is missing)"),
    Case("tags not strings", (es("m12", spec(data_from=[find(tags={"rotation": 1})])),), "skip",
         "malformed: spec.dataFrom[0].find.tags has a key or value that is not a string"),
    Case("refreshInterval not a duration", (es("m13", spec(item("db"), refreshInterval="soon")),), "report",
         "malformed: spec.refreshInterval 'soon' is not a Go duration"),
    Case("refreshInterval a number", (es("m14", spec(item("db"), refreshInterval=0)),), "report",
         "malformed: spec.refreshInterval 0 is not a duration string"),
    Case("store without vaultUrl, matching key", (
        {"apiVersion": V1, "kind": "SecretStore", "metadata": {"name": "broken", "namespace": "team-a"},
         "spec": {"provider": {"azurekv": {"authType": "ManagedIdentity"}}}},
        es("m15", spec(item("db"), store_name="broken", kind="SecretStore"))), "report",
         "its store team-a/SecretStore/broken cannot be read: spec.provider.azurekv.vaultUrl is missing, "
         "and spec.data[0].remoteRef.key 'db' reads it", subject=("team-a", "ExternalSecret", "m15")),
    Case("store without vaultUrl, other key", (
        {"apiVersion": V1, "kind": "SecretStore", "metadata": {"name": "broken", "namespace": "team-a"},
         "spec": {"provider": {"azurekv": {}}}},
        es("m16", spec(item("other"), store_name="broken", kind="SecretStore"))), "skip",
         "no reference to 'db'", subject=("team-a", "ExternalSecret", "m16")),
    Case("store URL not a URL", (
        {"apiVersion": V1, "kind": "SecretStore", "metadata": {"name": "relative", "namespace": "team-a"},
         "spec": {"provider": {"azurekv": {"vaultUrl": "kv-prod.vault.azure.net"}}}},
        es("m17", spec(item("db"), store_name="relative", kind="SecretStore"))), "report",
         "spec.provider.azurekv.vaultUrl 'kv-prod.vault.azure.net' is not a URL",
         subject=("team-a", "ExternalSecret", "m17")),
    Case("ownerReferences malformed", (es("m18", spec(item("db"))) | {"metadata": {
        "name": "m18", "namespace": "team-a", "ownerReferences": ["x", {"kind": "ClusterExternalSecret"}]}},),
         "annotate", "reads it"),
]


def valid_objects() -> list[Obj]:
    """Every fixture object an API server would accept (checked against the CRDs elsewhere)."""
    return [*WORLD, *(obj for case in TABLE for obj in case.objects)]


def verdict_for(case: Case, objects: list[Obj] | None = None) -> Verdict:
    verdicts = {(v.namespace, v.kind, v.name): v
                for v in match(VAULT, case.secret, TAGS, objects or [*WORLD, *case.objects])}
    return verdicts[case.key()]


@pytest.mark.parametrize("case", TABLE + MALFORMED, ids=lambda case: case.id)
def test_matching_table(case: Case) -> None:
    verdict = verdict_for(case)
    assert (verdict.action, case.fragment in verdict.reason) == (case.action, True), verdict.reason
    assert verdict.reason.startswith(f"{verdict.action}: ")
    for name, value in case.extra.items():
        assert getattr(verdict, name) == value


def test_every_action_and_reference_form_is_in_the_table() -> None:
    actions = {case.action for case in TABLE}
    assert actions == {"annotate", "annotate-parent", "report", "skip"}
    text = repr([case.objects for case in TABLE])
    for form in ("'remoteRef'", "'extract'", "'find'", "'regexp'", "'tags'", "'version'", "'sourceRef'",
                 "'storeRef'", "'refreshPolicy'", "'refreshInterval'", "'cert/db'", "'key/db'",
                 "'conditions'", "'ClusterExternalSecret'", "v1beta1"):
        assert form in text or form in repr(WORLD), form


def test_the_whole_cluster_at_once_is_sorted_with_one_verdict_each() -> None:
    objects = [*WORLD, *(obj for case in TABLE for obj in case.objects)]
    verdicts = match(VAULT, SECRET, TAGS, objects)
    keys = [(v.namespace, v.kind, v.name) for v in verdicts]
    assert keys == sorted(set(keys))
    for case in TABLE:
        if case.id.startswith("CES on a SecretStore, namespace"):
            continue  # children and selectors of other rows change these when all are together
        assert next(v for v in verdicts if (v.namespace, v.kind, v.name) == case.key()).action == case.action


def test_order_of_the_objects_does_not_matter() -> None:
    objects = [*WORLD, *(obj for case in TABLE for obj in case.objects)]
    expected = match(VAULT, SECRET, TAGS, objects)
    shuffler = random.Random(7)
    for _ in range(5):
        shuffled = objects[:]
        shuffler.shuffle(shuffled)
        assert match(VAULT, SECRET, TAGS, shuffled) == expected


def test_an_object_listed_as_v1_and_v1beta1_gets_one_verdict() -> None:
    one = es("dup", spec(item("db")))
    beta = {**one, "apiVersion": "external-secrets.io/v1beta1"}
    assert [v.name for v in match(VAULT, SECRET, TAGS, [*WORLD, one, beta])].count("dup") == 1


def test_a_store_listed_twice_with_different_vaults_is_not_trusted() -> None:
    twin = store("team-a", "kv-local", OTHER_VAULT)
    case = Case("", (es("dup-store", spec(item("db"), store_name="kv-local", kind=None)),), "report", "")
    verdict = verdict_for(case, [*WORLD, twin, *case.objects])
    assert verdict.action == "report"
    assert "is given 2 times with different specs" in verdict.reason


def test_list_objects_are_unwrapped() -> None:
    kubectl = {"apiVersion": "v1", "kind": "List", "items": [*WORLD, es("listed", spec(item("db")))]}
    api = {"apiVersion": V1, "kind": "ExternalSecretList", "metadata": {},
           "items": [{"metadata": {"name": "api-listed", "namespace": "team-a"}, "spec": spec(item("db"))}]}
    names = {v.name: v.action for v in match(VAULT, SECRET, TAGS, [kubectl, api])}
    assert names == {"listed": "annotate", "api-listed": "annotate"}


def test_other_kinds_and_groups_are_ignored() -> None:
    others = [{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"}},
              {"apiVersion": "example.com/v1", "kind": "ExternalSecret", "metadata": {"name": "x"}},
              "not an object", None, 3]
    assert match(VAULT, SECRET, TAGS, [*WORLD, *others]) == []


def test_label_selector_without_the_namespace_object_annotates_and_says_so() -> None:
    world = [obj for obj in WORLD if obj["kind"] != "Namespace"]
    case = Case("", (es("unknown-labels", spec(item("db"), store_name="kv-by-label")),), "annotate", "")
    verdict = verdict_for(case, [*world, *case.objects])
    assert verdict.action == "annotate"
    assert "spec.conditions not evaluated: spec.conditions[0].namespaceSelector needs Namespace " \
           "'team-a''s labels; assumed allowed" in verdict.reason


def test_the_event_vault_must_be_a_url() -> None:
    with pytest.raises(ValueError, match="is not an https:// URL"):
        match("kv-prod", SECRET, TAGS, WORLD)


@pytest.mark.parametrize(("given", "expected"), [
    ("https://kv-prod.vault.azure.net", "https://kv-prod.vault.azure.net"),
    ("https://kv-prod.vault.azure.net/", "https://kv-prod.vault.azure.net"),
    ("HTTPS://KV-Prod.Vault.Azure.Net:443//", "https://kv-prod.vault.azure.net"),
    (" https://kv-prod.vault.azure.net. ", "https://kv-prod.vault.azure.net"),
    ("https://127.0.0.1:8443/", "https://127.0.0.1:8443"),
    ("https://[::1]:443", "https://[::1]"),
    ("http://localhost:80/x/", "http://localhost/x"),
])
def test_vault_url_normalisation(given: str, expected: str) -> None:
    assert normalise_vault_url(given) == expected


@pytest.mark.parametrize("bad", ["kv-prod.vault.azure.net", "ftp://kv", "https://", "https://kv:99999", ""])
def test_vault_url_normalisation_refuses(bad: str) -> None:
    with pytest.raises(ValueError):
        normalise_vault_url(bad)


@pytest.mark.parametrize(("text", "nanoseconds"), [
    ("0", 0), ("-0", 0), ("0s", 0), ("1h0m0s", 3600 * 10**9), ("1.5h", 5400 * 10**9),
    ("15m30s", 930 * 10**9), ("-1s", -(10**9)), ("+2ms", 2 * 10**6), ("1us", 1000), ("1\u00b5s", 1000),
    ("0.5ns", 0), (".5s", 5 * 10**8), ("1h1h", 7200 * 10**9),
])
def test_go_durations(text: str, nanoseconds: int) -> None:
    assert parse_go_duration(text) == nanoseconds


@pytest.mark.parametrize("bad", ["", "1", "s", ".s", "1x", "1h 2m", "1.2.3s", "9999999999h", "+"])
def test_go_durations_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_go_duration(bad)


# -- find.name.regexp: Go's unanchored MatchString, on similar names

@pytest.mark.parametrize(("pattern", "secret", "action"), [
    ("^db$", "db-admin", "skip"), ("^db", "db-admin", "annotate"), ("db", "db-admin", "annotate"),
    ("admin$", "db-admin", "annotate"), ("^admin", "db-admin", "skip"), ("^db$", "db", "annotate"),
    ("^db-", "db", "skip"), ("^DB", "db", "skip"), ("(?i)^DB", "db", "annotate"),
    (r"\bdb\b", "db-admin", "annotate"), (r"^db\z", "db", "annotate"), (r"\Adb$", "db-admin", "skip"),
    ("^(db|cache)-admin$", "db-admin", "annotate"), ("^db-[a-z]{3}$", "db-admin", "skip"),
    ("^[[:alpha:]]+-[[:alpha:]]+$", "db-admin", "annotate"), (r"^\Qdb-admin\E$", "db-admin", "annotate"),
])
def test_regexp_anchors_on_similar_names(pattern: str, secret: str, action: str) -> None:
    case = Case("", (es("rx", spec(data_from=[find(name={"regexp": pattern})])),), action, "", secret=secret)
    assert verdict_for(case).action == action


@pytest.mark.parametrize(("pattern", "text", "expected"), [
    ("a{,3}", "a{,3}", True), ("a{,3}", "aaa", False),  # Go: "{,3}" is literal; Python: a repeat
    (r"\x{41}", "A", True), (r"\101", "A", True), (r"[\d-z]", "-", True), ("[]a]", "]", True),
    ("[[:^alpha:]]", "abc", False), (r"\pL", "a", True), (r"\PL", "a", False), (r"\p{^Lu}", "a", True),
    ("(?<n>db)", "db", True), ("(?P<n>db)", "db", True), ("(?i)k", "\u212a", True), ("(?U)a+?", "a", True),
    ("(?i)(?s)a.b", "A\nB", True), ("a(?i)b|c", "C", True), ("(?i:a)b", "AB", False),
    ("(?m)^b$", "a\nb", True), ("^b$", "a\nb", False), ("$^", "", True), ("^*", "", True),
    ("", "anything", True), ("{", "{", True), (r"[a\-]", "-", True), ("x{1000}", "x" * 1000, True),
    ("a{01}", "a{01}", True), ("a{01}", "a", False), ("a{1,01}", "a{1,01}", True), ("(?i)s", "\u017f", True),
    ("[(?P<\u00e9>)]", "\u00e9", True), (r"\Q\C\E", "\\C", True), ("b$", "b\n", False), ("[^a]", "\n", True),
    (".", "\n", False), (r"\s", "\v", False), (r"\w", "\u00e9", False), (r"\p{Any}", "-", True),
    ("x*(?i)*", "", True), ("(" * 101 + ")" * 101, "", True),
    ("(" * (MAX_HEIGHT - 1) + "a" + ")" * (MAX_HEIGHT - 1), "a", True),  # Go's tree is exactly 1000 tall
    ("(?:" + "^" * 3300 + "){1000}", "", True),  # Go's size estimate, 3.3 million, is within its limit
])
def test_go_regexp_semantics(pattern: str, text: str, expected: bool) -> None:
    compiled = compile_go(pattern)
    assert compiled.problem is None
    assert compiled.search(text) is expected


@pytest.mark.parametrize(("pattern", "go_rejects"), [
    ("(?=x)", True), ("(?<=x)y", True), (r"(a)\1", True), ("a**", True), ("a*+", True), ("a{2}{3}", True),
    (r"\Z", True), (r"\C", True), (r"\q", True), ("(?x)a", True), ("(?-)a", True), ("(?>a)", True),
    ("x{1001}", True), ("(x{100}){100}", True), ("[z-a]", True), ("[[:nope:]]", True), ("(a", True),
    ("a)", True), ("*a", True), ("[a", True), ("\\", True), (r"\8", True), (r"\x{110000}", True),
    ("(?P<\u00e9>x)", True), ("a{1000000000}", True), ("(" * MAX_HEIGHT + ")" * MAX_HEIGHT, True),
    ("(a|" * 300 + ")" * 300, False),  # Go accepts it, but the bound on its height cannot tell
    ("(?:" + "a*" * 1700 + "){1000}", False),  # RE2 simplifies it; Go's size estimate is too large
    (r"\p{Greek}", False), (r"\p{Old_Italic}", False), (r"\p{Letter}", False),  # Go's \p names vary
    (r"\pL{1000}", False), ("(?:(?:x{1000}){0}){2}", False),  # RE2's limits, stricter than Go's here
])
def test_go_regexp_refusals(pattern: str, go_rejects: bool) -> None:
    compiled = compile_go(pattern)
    assert compiled.problem is not None
    assert compiled.go_rejects is go_rejects
    assert compiled.search("anything") is False


def test_go_regexp_never_backtracks() -> None:
    started = time.perf_counter()
    for pattern in ("(a|a)*b", "(a+)+$b", "(a*)*(a*)*(a*)*c", "(x+x+)+y", ".*.*.*.*.*=.*"):
        assert compile_go(pattern).search("a" * 127) is False
    assert time.perf_counter() - started < 2.0  # Python's re needs seconds for 24 characters of the first


_ATOMS = st.sampled_from(["a", "b", "d", "-", ".", "[ab]", "[^a]", "[a-c]", r"\d", r"\w", "x", "B"])


def _regex(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.tuples(inner, inner).map("".join),
        st.tuples(inner, inner).map("|".join),
        inner.map(lambda s: f"({s})"),
        st.tuples(inner, st.sampled_from(["*", "+", "?", "{1,2}", "{2}", "*?"]))
        .map(lambda t: f"(?:{t[0]}){t[1]}"),
    )


_PATTERNS = st.tuples(st.sampled_from(["", "^"]), st.recursive(_ATOMS, _regex, max_leaves=8),
                      st.sampled_from(["", "$"])).map("".join)


@settings(max_examples=400, deadline=None)
@given(pattern=_PATTERNS, name=st.text(alphabet="abdx-0B", max_size=8))
def test_go_regexp_agrees_with_python_re_where_both_apply(pattern: str, name: str) -> None:
    """Python's re is the oracle on syntax both share (short names keep it fast)."""
    assert compile_go(pattern).search(name) == bool(re.search(pattern, name))


# -- properties: never raises, deterministic

_KEYS = st.sampled_from([
    "apiVersion", "kind", "metadata", "name", "namespace", "spec", "data", "dataFrom", "remoteRef", "key",
    "version", "find", "tags", "regexp", "extract", "sourceRef", "storeRef", "generatorRef", "secretStoreRef",
    "provider", "azurekv", "vaultUrl", "conditions", "namespaces", "namespaceRegexes", "namespaceSelector",
    "namespaceSelectors", "matchLabels", "matchExpressions", "operator", "values", "ownerReferences",
    "controller", "refreshPolicy", "refreshInterval", "externalSecretSpec", "externalSecretName", "status",
    "provisionedNamespaces", "labels", "items", "target", "metadataPolicy",
]) | st.text(max_size=4)
_SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=6) | \
    st.sampled_from([V1, "external-secrets.io/v1beta1", "v1", "ExternalSecret", "ClusterExternalSecret",
                     "SecretStore", "ClusterSecretStore", "Namespace", "List", "ExternalSecretList", "db",
                     "secret/db", "cert/db", "kv", "kv-local", VAULT, "0", "0s", "CreatedOnce", "OnChange",
                     "^db", "(", "In", "Exists", "team-a"])
_JSON = st.recursive(_SCALARS, lambda children: st.lists(children, max_size=4)
                     | st.dictionaries(_KEYS, children, max_size=5), max_leaves=25)


@st.composite
def _mutated(draw: st.DrawFn) -> Any:
    """A well-formed fixture with one value somewhere replaced by arbitrary JSON."""
    obj = draw(st.sampled_from(valid_objects()))
    return _replace_somewhere(obj, draw, depth=0)


def _replace_somewhere(value: Any, draw: st.DrawFn, depth: int) -> Any:
    if isinstance(value, Mapping) and value and depth < 8 and draw(st.integers(0, 4)):
        key = draw(st.sampled_from(sorted(value)))
        return {**value, key: _replace_somewhere(value[key], draw, depth + 1)}
    if isinstance(value, list) and value and depth < 8 and draw(st.integers(0, 4)):
        index = draw(st.integers(0, len(value) - 1))
        return [*value[:index], _replace_somewhere(value[index], draw, depth + 1), *value[index + 1:]]
    return draw(_JSON)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(objects=st.lists(_JSON | _mutated(), max_size=8),
       tags=st.dictionaries(st.text(max_size=3), st.text(max_size=3), max_size=3))
def test_match_never_raises_and_is_deterministic(objects: list[Any], tags: dict[str, str]) -> None:
    objects = [*WORLD[:3], *objects]
    verdicts = match(VAULT, SECRET, tags, objects)
    assert verdicts == match(VAULT, SECRET, tags, list(reversed(objects)))
    keys = [(v.namespace, v.kind, v.name) for v in verdicts]
    assert keys == sorted(set(keys))
    for verdict in verdicts:
        assert verdict.reason.startswith(f"{verdict.action}: ")
        assert verdict.action in ("annotate", "annotate-parent", "report", "skip")


def case(case_id: str) -> Case:
    return next(c for c in TABLE if c.id == case_id)


def test_permutations_of_a_small_cluster_agree() -> None:
    objects = [WORLD[0], WORLD[6], *case("key plain name").objects, *case("CES child").objects,
               *case("CES on a SecretStore, namespace known from a child").objects]
    results = {tuple(match(VAULT, SECRET, TAGS, list(p))) for p in itertools.permutations(objects)}
    assert len(results) == 1


@pytest.mark.parametrize("secret", [SECRET, "db-admin", "DB", "tls", "other"])
def test_candidates_only_keeps_exactly_the_verdicts_a_rotation_acts_on(secret: str) -> None:
    objects = [*WORLD, *(obj for case in TABLE + MALFORMED for obj in case.objects)]
    for tags in (TAGS, {}, {"rotation": "managed"}):
        everything = match(VAULT, secret, tags, objects)
        acted_on = [v for v in everything if v.action != "skip"]
        assert match(VAULT, secret, tags, objects, candidates_only=True) == acted_on
        assert len(acted_on) < len(everything)
