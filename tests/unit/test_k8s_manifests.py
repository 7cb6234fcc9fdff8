"""``infra/k8s``: the rotator's RBAC and the consumer examples, checked against the schemas the
API server uses and against the rotator's own code.

- Every YAML document parses. ESO kinds validate against the ``openAPIV3Schema`` of the served
  version of their CRD in ``../shared/eso-crds`` (ESO v2.9.0; skipped when the folder is
  absent, see ``twins.kubernetes.eso_crd_dir``), with unknown fields refused as ``kubectl
  apply``'s default server-side field validation (Strict) refuses them. Everything else
  validates against Kubernetes' own OpenAPI schemas from ``kubernetes-validate`` in strict
  mode, for each minor version it ships from :data:`OLDEST_KUBERNETES` up.
- The examples do what the rotator expects: its matching answers ``annotate`` for the example
  ExternalSecret (so force-sync acts), and its Reloader rules say Reloader restarts the
  example Deployment for that ExternalSecret's Secret.
- The ClusterRole in ``rbac.yaml`` never reads Secrets and grants exactly the verbs the
  rotator's :class:`~rotation.propagation.cluster.Cluster` sends: found by running every
  method of the propagation port (:class:`rotation.propagation.api.ClusterApi`) against a fake
  API server under the official client, and by refusing each call in turn to see which ones
  the code does without (listing Namespaces, for ClusterSecretStore conditions).

Each check is also run on a broken copy, to show that it can fail.
"""

from __future__ import annotations

import copy
import typing
from functools import cache, partial
from pathlib import Path
from typing import Any

import pytest

from rotation.propagation.api import ClusterApi
from rotation.propagation.confirm import reloader_watches, template_annotations
from rotation.propagation.matching import Kind as ConsumerKind
from rotation.propagation.matching import match
from tests.support.k8s_manifests import (
    CallSet,
    CrdSchemas,
    Document,
    Grant,
    cluster_calls,
    load_documents,
    role_grants,
    yaml_files,
)
from twins.kubernetes import PolicyRule, eso_crd_dir
from twins.kubernetes.rbac import Attributes

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "infra" / "k8s"
EXAMPLES = K8S / "examples"
ESO_GROUP = "external-secrets.io"
OLDEST_KUBERNETES = "1.33"  # what the Kubernetes twin reports; RKE2 and upstream lines since

# What the examples stand for: the rotated secret, as Key Vault's event would name it.
VAULT_URL = "https://kv-prod.vault.azure.net"
SECRET = "app-db-credentials"

DOCUMENTS = load_documents(K8S)


def ident(doc: Document) -> str:
    return doc.ident(K8S)


def only(kind: str, root: Path = EXAMPLES) -> dict[str, Any]:
    found = [d.obj for d in DOCUMENTS if d.kind == kind and d.path.is_relative_to(root)]
    assert len(found) == 1, f"expected one {kind} under {root.relative_to(ROOT)}, found {len(found)}"
    return copy.deepcopy(found[0])


def example_objects(**replace: dict[str, Any]) -> list[dict[str, Any]]:
    """Every example object, a copy, with ``replace[kind]`` standing in for that kind's."""
    return [copy.deepcopy(replace.get(d.kind, d.obj)) for d in DOCUMENTS if d.path.is_relative_to(EXAMPLES)]


# -- parsing ------------------------------------------------------------------------------------


def test_every_yaml_document_parses_and_names_itself() -> None:
    import yaml

    files = yaml_files(K8S)
    assert K8S / "rbac.yaml" in files
    assert {p.name for p in files if p.parent == EXAMPLES} >= {
        "cluster-secret-store.yaml", "external-secret.yaml", "deployment.yaml"}
    for path in files:
        documents = list(yaml.safe_load_all(path.read_text()))  # raises on a YAML error
        assert any(d is not None for d in documents), f"{path.name} holds no document"
    for doc in DOCUMENTS:
        assert isinstance(doc.obj, dict), ident(doc)
        assert doc.obj.get("apiVersion") and doc.obj.get("kind") and doc.name, \
            f"{ident(doc)}: apiVersion, kind and metadata.name are required"


def test_each_example_file_says_what_it_is_for() -> None:
    for path in yaml_files(EXAMPLES):
        head = path.read_text().splitlines()[:3]
        assert head and all(line.startswith("#") for line in head), \
            f"{path.name} should open with a comment saying what it is for and what to change"


# -- ESO kinds against their CRDs -------------------------------------------------------------------


@cache
def crds() -> CrdSchemas:
    directory = eso_crd_dir()
    if directory is None:
        # The CRDs live in ../shared beside the checkout, which a clone elsewhere may lack: the
        # guide asks tests that read ../shared to skip cleanly there (the reason names it).
        pytest.skip("ESO CRDs not found: ../shared/eso-crds next to the checkout, or set "
                    "AKV_ROTATOR_ESO_CRDS to a folder holding ESO's config/crds/bases files")
    import jsonschema  # noqa: F401 - a dev dependency (through kubernetes-validate): missing must fail
    return CrdSchemas(directory)


ESO_DOCUMENTS = [d for d in DOCUMENTS if d.group == ESO_GROUP]
CORE_DOCUMENTS = [d for d in DOCUMENTS if d.group != ESO_GROUP]


def test_the_examples_hold_the_eso_kinds_the_rotator_reads() -> None:
    assert {d.kind for d in ESO_DOCUMENTS} >= {"ExternalSecret", "ClusterSecretStore"}


@pytest.mark.parametrize("doc", ESO_DOCUMENTS, ids=ident)
def test_eso_object_matches_its_crd(doc: Document) -> None:
    assert crds().errors(doc.obj) == []
    assert metadata_errors(doc.obj) == []


def test_the_crd_check_refuses_unknown_fields_bad_values_and_unserved_versions() -> None:
    es = only("ExternalSecret")
    assert crds().errors(es) == []

    unknown = copy.deepcopy(es)
    unknown["spec"]["target"]["creationPolicyy"] = "Owner"
    assert any("creationPolicyy" in e for e in crds().errors(unknown))

    bad_enum = copy.deepcopy(es)
    bad_enum["spec"]["refreshPolicy"] = "Sometimes"
    assert any(e.startswith("spec.refreshPolicy") for e in crds().errors(bad_enum))

    missing = copy.deepcopy(only("ClusterSecretStore"))
    del missing["spec"]["provider"]["azurekv"]["vaultUrl"]
    assert any("vaultUrl" in e for e in crds().errors(missing))

    old = copy.deepcopy(es)
    old["apiVersion"] = f"{ESO_GROUP}/v1beta1"  # in the CRD, but served: false since ESO 0.17
    assert any("not served" in e for e in crds().errors(old))

    push = {"apiVersion": f"{ESO_GROUP}/v1alpha1", "kind": "PushSecret", "metadata": {"name": "x"}}
    assert any("no CRD" in e for e in crds().errors(push))

    bad_meta = copy.deepcopy(es)
    bad_meta["metadata"]["annotation"] = {}
    assert metadata_errors(bad_meta) != []


# -- everything else against Kubernetes' OpenAPI schemas --------------------------------------------


def kubernetes_versions() -> list[str]:
    try:
        from kubernetes_validate import utils
    except ImportError:
        return [OLDEST_KUBERNETES]  # the tests using it skip
    shipped = sorted({utils.major_minor(v) for v in utils.all_versions()})
    return [str(v) for v in shipped if v >= utils.major_minor(OLDEST_KUBERNETES)]


def kubernetes_validate() -> Any:
    return pytest.importorskip("kubernetes_validate",
                               reason="kubernetes-validate is a dev dependency (pip install -e '.[dev]')")


def core_errors(obj: dict[str, Any], version: str) -> list[str]:
    kv = kubernetes_validate()
    try:
        kv.validate(obj, version, strict=True)
    except kv.SchemaNotFoundError as exc:
        return [f"no Kubernetes {version} schema: {exc}"]
    except kv.ValidationError as exc:
        return [str(exc).splitlines()[0]]
    return []


def metadata_errors(obj: dict[str, Any]) -> list[str]:
    """A CRD's schema says only ``metadata: object``: check it as ObjectMeta (strict)."""
    holder = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": obj.get("metadata")}
    return core_errors(holder, kubernetes_versions()[-1])


@pytest.mark.parametrize("version", kubernetes_versions())
@pytest.mark.parametrize("doc", CORE_DOCUMENTS, ids=ident)
def test_object_matches_the_kubernetes_openapi_schema(doc: Document, version: str) -> None:
    assert core_errors(doc.obj, version) == []


def test_strict_validation_refuses_unknown_fields_and_wrong_types() -> None:
    deployment = only("Deployment")
    assert core_errors(deployment, OLDEST_KUBERNETES) == []

    unknown = copy.deepcopy(deployment)
    unknown["spec"]["template"]["spec"]["containers"][0]["readOnlyRootFS"] = True
    assert "readOnlyRootFS" in " ".join(core_errors(unknown, OLDEST_KUBERNETES))

    typo = copy.deepcopy(deployment)
    typo["metadata"]["anotations"] = typo["metadata"].pop("annotations")
    assert core_errors(typo, OLDEST_KUBERNETES) != []

    wrong_type = copy.deepcopy(deployment)
    wrong_type["spec"]["replicas"] = "2"
    assert core_errors(wrong_type, OLDEST_KUBERNETES) != []

    role = only("ClusterRole", K8S)
    role["rules"][0]["verb"] = role["rules"][0].pop("verbs")
    assert core_errors(role, OLDEST_KUBERNETES) != []

    unknown_kind = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "x"}}
    assert core_errors(unknown_kind, OLDEST_KUBERNETES) != []


def workload_errors(deployment: dict[str, Any]) -> list[str]:
    """Two rules the API server checks that the OpenAPI schema cannot say."""
    spec = deployment["spec"]
    errors: list[str] = []
    selector = spec.get("selector", {}).get("matchLabels", {})
    labels = spec["template"].get("metadata", {}).get("labels", {})
    if not selector or any(labels.get(k) != v for k, v in selector.items()):
        errors.append("spec.selector does not match spec.template.metadata.labels")
    pod = spec["template"]["spec"]
    volumes = {v["name"] for v in pod.get("volumes", [])}
    for container in pod.get("containers", []):
        errors += [f"container {container['name']}: volumeMount {m['name']} names no volume"
                   for m in container.get("volumeMounts", []) if m["name"] not in volumes]
    return errors


def test_the_deployment_passes_the_api_servers_workload_rules() -> None:
    deployment = only("Deployment")
    assert workload_errors(deployment) == []
    broken = copy.deepcopy(deployment)
    broken["spec"]["selector"]["matchLabels"] = {"app.kubernetes.io/name": "other"}
    broken["spec"]["template"]["spec"]["volumes"] = []
    assert len(workload_errors(broken)) == 3


# -- the examples, as the rotator sees them --------------------------------------------------------


def es_verdict(objects: list[dict[str, Any]]) -> Any:
    es = only("ExternalSecret")
    found = [v for v in match(VAULT_URL, SECRET, {}, objects)
             if (v.kind, v.namespace, v.name) == ("ExternalSecret", es["metadata"]["namespace"],
                                                  es["metadata"]["name"])]
    assert len(found) == 1
    return found[0]


def test_the_rotators_matching_annotates_the_example_external_secret() -> None:
    verdict = es_verdict(example_objects())
    store = only("ClusterSecretStore")
    assert verdict.action == "annotate", verdict.reason
    assert verdict.store == f"ClusterSecretStore/{store['metadata']['name']}"
    assert verdict.target_secret == only("ExternalSecret")["spec"]["target"]["name"]


@pytest.mark.parametrize(("change", "action"), [
    (lambda es, css: es["spec"].update(refreshPolicy="CreatedOnce"), "report"),
    (lambda es, css: es["spec"].update(refreshInterval="0s"), "report"),
    (lambda es, css: [d["remoteRef"].update(version="0" * 32) for d in es["spec"]["data"]], "report"),
    (lambda es, css: es["spec"].update(refreshPolicy="OnChange", refreshInterval="0s"), "annotate"),
    (lambda es, css: css["spec"]["provider"]["azurekv"].update(vaultUrl="https://kv-other.vault.azure.net"),
     "skip"),
    (lambda es, css: css["spec"].update(conditions=[{"namespaces": ["elsewhere"]}]), "skip"),
], ids=["CreatedOnce", "refreshInterval-0", "pinned-version", "OnChange", "other-vault", "namespace-refused"])
def test_matching_tells_a_broken_copy_apart(change: Any, action: str) -> None:
    es, css = only("ExternalSecret"), only("ClusterSecretStore")
    change(es, css)
    verdict = es_verdict(example_objects(ExternalSecret=es, ClusterSecretStore=css))
    assert verdict.action == action, verdict.reason


def test_the_store_uses_the_example_service_account_for_workload_identity() -> None:
    azurekv = only("ClusterSecretStore")["spec"]["provider"]["azurekv"]
    account = only("ServiceAccount")
    assert azurekv["authType"] == "WorkloadIdentity"
    assert azurekv["serviceAccountRef"] == {"name": account["metadata"]["name"],
                                            "namespace": account["metadata"]["namespace"]}
    assert "azure.workload.identity/client-id" in account["metadata"]["annotations"]


def test_reloader_restarts_the_example_deployment_for_the_external_secrets_secret() -> None:
    es, deployment = only("ExternalSecret"), only("Deployment")
    secret = es_verdict(example_objects()).target_secret
    assert deployment["metadata"]["namespace"] == es["metadata"]["namespace"]
    assert reloader_watches(deployment, secret, template_annotations(es))
    volumes = deployment["spec"]["template"]["spec"]["volumes"]
    mounted = {v.get("secret", {}).get("secretName") for v in volumes}
    assert secret in mounted, "the Deployment reads the Secret it is restarted for"


def test_reloaders_rules_tell_a_broken_copy_apart() -> None:
    es, deployment = only("ExternalSecret"), only("Deployment")
    secret = es["spec"]["target"]["name"]

    bare = copy.deepcopy(deployment)
    bare["metadata"].pop("annotations")
    assert not reloader_watches(bare, secret, template_annotations(es))

    other = copy.deepcopy(deployment)
    other["metadata"]["annotations"] = {"secret.reloader.stakater.com/reload": f"{secret}-old"}
    assert not reloader_watches(other, secret, template_annotations(es))

    ignored = copy.deepcopy(es)
    ignored["spec"]["target"]["template"]["metadata"]["annotations"]["reloader.stakater.com/ignore"] = "true"
    assert not reloader_watches(deployment, secret, template_annotations(ignored))

    search = copy.deepcopy(deployment)  # search mode: needs the Secret's match annotation
    search["metadata"]["annotations"] = {"reloader.stakater.com/search": "true"}
    assert reloader_watches(search, secret, template_annotations(es))
    unmatched = copy.deepcopy(es)
    del unmatched["spec"]["target"]["template"]
    assert not reloader_watches(search, secret, template_annotations(unmatched))


# -- RBAC: exactly what the rotator's calls need, and never a Secret ------------------------------


SECRET_READS = ("get", "list", "watch")


def secret_read_problems(role: dict[str, Any]) -> list[str]:
    """Which of get/list/watch on core Secrets the role allows (wildcards included)."""
    rules = [PolicyRule.from_dict(rule) for rule in role.get("rules") or []]
    return [f"{role['kind']}/{role['metadata']['name']} allows {verb} on secrets"
            for verb in SECRET_READS
            if any(rule.allows(Attributes(verb, "", "secrets")) for rule in rules)]


def port_flows() -> dict[str, Any]:
    """One call of each method of the propagation port, on the kinds propagation passes it."""
    consumer_kinds = typing.get_args(ConsumerKind)  # verdict kinds: what get/force_sync receive
    flows: dict[str, Any] = {
        "eso_objects": lambda cluster: cluster.eso_objects(),
        "workloads": lambda cluster: cluster.workloads("payments"),
    }
    for kind in consumer_kinds:
        where = (f"{ESO_GROUP}/v1", kind, "" if kind.startswith("Cluster") else "payments", "app-db")
        flows[f"get {kind}"] = partial(_get, where=where)
        flows[f"force_sync {kind}"] = partial(_force_sync, where=where)
    methods = {name for name, value in vars(ClusterApi).items()
               if callable(value) and not name.startswith("_")}
    assert {name.split()[0] for name in flows} == methods, "a port method is not exercised here"
    return flows


@cache
def rotator_calls() -> CallSet:
    return cluster_calls(port_flows())


def _get(cluster: Any, where: tuple[str, str, str, str]) -> object:
    return cluster.get(*where)


def _force_sync(cluster: Any, where: tuple[str, str, str, str]) -> object:
    return cluster.force_sync(*where, "rotation-1")


def rbac_problems(role: dict[str, Any], calls: CallSet) -> list[str]:
    grants, problems = role_grants(role)
    problems += secret_read_problems(role)
    problems += [f"missing {verb} on {resource}.{group or 'core'} (needed by {', '.join(sorted(users))})"
                 for (verb, group, resource), users in sorted(calls.required.items())
                 if (verb, group, resource) not in grants]
    problems += [f"grants {verb} on {resource}.{group or 'core'}, which the rotator never "
                 f"{'needs' if g in calls.optional else 'calls'}"
                 for g in sorted(grants - set(calls.required)) for verb, group, resource in [g]]
    return problems


def test_the_derived_calls_are_those_cluster_py_documents() -> None:
    """Guards the derivation itself: the fake server saw the calls cluster.py documents."""
    calls = rotator_calls()
    eso = {(verb, ESO_GROUP, plural) for plural in ("externalsecrets", "clusterexternalsecrets")
           for verb in ("get", "list", "patch")}
    stores = {("list", ESO_GROUP, plural) for plural in ("secretstores", "clustersecretstores")}
    workloads = {("list", "apps", plural) for plural in ("deployments", "statefulsets", "daemonsets")}
    assert set(calls.required) == eso | stores | workloads
    assert set(calls.optional) == {("list", "", "namespaces")}  # ClusterSecretStore conditions


def test_the_cluster_role_grants_exactly_what_the_rotator_calls_and_no_secret_read() -> None:
    role = only("ClusterRole", K8S)
    assert rbac_problems(role, rotator_calls()) == []


def test_every_role_under_infra_k8s_is_free_of_secret_reads() -> None:
    roles = [d.obj for d in DOCUMENTS if d.kind in ("Role", "ClusterRole")]
    assert roles
    for role in roles:
        assert secret_read_problems(role) == []


def broken_roles() -> dict[str, tuple[dict[str, Any], str]]:
    role = only("ClusterRole", K8S)

    def copy_with(rule: dict[str, Any] | None = None, drop: Grant | None = None) -> dict[str, Any]:
        changed = copy.deepcopy(role)
        if rule is not None:
            changed["rules"].append(rule)
        if drop is not None:
            verb, group, resource = drop
            for r in changed["rules"]:
                if group in r["apiGroups"] and resource in r["resources"] and verb in r["verbs"]:
                    r["verbs"] = [v for v in r["verbs"] if v != verb]
        return changed

    return {
        "secrets get": (copy_with({"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}),
                        "allows get on secrets"),
        "core wildcard": (copy_with({"apiGroups": [""], "resources": ["*"], "verbs": ["list"]}),
                          "allows list on secrets"),
        "watch too": (copy_with({"apiGroups": [ESO_GROUP], "resources": ["externalsecrets"],
                                 "verbs": ["watch"]}), "grants watch on externalsecrets"),
        "namespaces": (copy_with({"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list"]}),
                       "never needs"),
        "no patch": (copy_with(drop=("patch", ESO_GROUP, "externalsecrets")),
                     "missing patch on externalsecrets"),
        "no workloads": (copy_with(drop=("list", "apps", "daemonsets")), "missing list on daemonsets"),
        "named only": (copy_with({"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["list"],
                                  "resourceNames": ["api"]}), "resourceNames is set"),
    }


@pytest.mark.parametrize("name", list(broken_roles()))
def test_the_rbac_check_fails_a_broken_role(name: str) -> None:
    role, expected = broken_roles()[name]
    problems = rbac_problems(role, rotator_calls())
    assert any(expected in p for p in problems), problems


def test_the_binding_gives_the_role_to_the_service_account() -> None:
    role, binding = only("ClusterRole", K8S), only("ClusterRoleBinding", K8S)
    account = next(d.obj for d in DOCUMENTS if d.path == K8S / "rbac.yaml" and d.kind == "ServiceAccount")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                  "name": role["metadata"]["name"]}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account["metadata"]["name"],
                                    "namespace": account["metadata"]["namespace"]}]
