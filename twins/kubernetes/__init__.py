"""Kubernetes twin: an HTTPS API server the official ``kubernetes`` client talks to unchanged.

Usage::

    from kubernetes import client
    from twins.kubernetes import KubernetesTwin, PolicyRule

    rotator = [PolicyRule(verbs=("get", "list", "patch"), api_groups=("external-secrets.io",),
                          resources=("externalsecrets",))]
    with KubernetesTwin(tokens={"rotator-token": rotator}) as twin:
        twin.put({"apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
                  "metadata": {"name": "db", "namespace": "apps"},
                  "spec": {"secretStoreRef": {"name": "vault", "kind": "ClusterSecretStore"}}})
        api = client.CustomObjectsApi(twin.api_client("rotator-token"))
        api.patch_namespaced_custom_object("external-secrets.io", "v1", "apps", "externalsecrets", "db",
                                           {"metadata": {"annotations": {"force-sync": "1"}}})

What it serves (see each module for the API server source it follows):

- kinds (:mod:`~twins.kubernetes.kinds`): core/v1 Namespaces and Secrets; apps/v1
  Deployments, StatefulSets, DaemonSets; ``external-secrets.io`` v1 and v1beta1
  ExternalSecrets, ClusterExternalSecrets, SecretStores, ClusterSecretStores, all with their
  ``status`` subresource except Secrets; discovery for all of them (:mod:`~twins.kubernetes.discovery`);
- verbs get, list (label and field selectors, ``limit``/``continue``), create, update,
  patch (merge, strategic merge for built-ins, JSON patch), delete (finalizers honoured),
  deletecollection; one global resourceVersion with 409 on stale writes, generation,
  ``/status`` separation (:mod:`~twins.kubernetes.store`, :mod:`~twins.kubernetes.strategy`,
  :mod:`~twins.kubernetes.patch`, :mod:`~twins.kubernetes.selectors`);
- validation: ESO objects against the CRDs' ``openAPIV3Schema`` (pruning, defaults, 422
  with field paths), ObjectMeta and a few built-in rules (:mod:`~twins.kubernetes.schema`,
  :mod:`~twins.kubernetes.validation`);
- bearer tokens (401) and RBAC per verb, group, resource/subresource, namespace and name
  (403 worded as the API server's) (:mod:`~twins.kubernetes.rbac`);
- errors as ``Status`` objects (:mod:`~twins.kubernetes.errors`); faults and a request log
  (:mod:`~twins.kubernetes.faults`); a kubeconfig per token (:mod:`~twins.kubernetes.kubeconfig`).

Not served: watch streams (in-process code subscribes with ``KubernetesTwin.watch``),
server-side apply, CEL validation rules, other kinds, managedFields. Request handling is in
:mod:`~twins.kubernetes.routes`, HTTPS in :mod:`~twins.kubernetes.server`, the facade in
:mod:`~twins.kubernetes.twin`, the CLI in ``__main__``. The plumbing shared with the other
twins comes from :mod:`twins.http` and :mod:`twins.tls`. The ``kubernetes`` package is only
imported by :meth:`KubernetesTwin.api_client`; nothing here imports ``rotation``,
``handlers`` or ``demo``.
"""

from twins.kubernetes.errors import ApiError
from twins.kubernetes.faults import Fault, RecordedRequest
from twins.kubernetes.kinds import ESO_GROUP, ESO_VERSIONS
from twins.kubernetes.rbac import ADMIN_RULES, Identity, PolicyRule, rules_from_manifests
from twins.kubernetes.store import ADDED, DELETED, MODIFIED
from twins.kubernetes.twin import DEFAULT_CRD_DIR, KubernetesTwin, eso_crd_dir

__all__ = [
    "ADDED",
    "ADMIN_RULES",
    "DEFAULT_CRD_DIR",
    "DELETED",
    "ESO_GROUP",
    "ESO_VERSIONS",
    "MODIFIED",
    "ApiError",
    "Fault",
    "Identity",
    "KubernetesTwin",
    "PolicyRule",
    "RecordedRequest",
    "eso_crd_dir",
    "rules_from_manifests",
]
