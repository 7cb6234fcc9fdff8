"""What a rotation's propagation would do, found without changing anything (the plan).

The same matching the ``propagated`` step uses (:mod:`rotation.propagation.matching`), and
the same rule for which workloads Reloader restarts (:mod:`rotation.propagation.confirm`),
but only reads: no annotation is written and nothing is journaled. Each consumer is reported
with what force-sync will do for it and which workloads will roll when its Secret changes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rotation.propagation import confirm
from rotation.propagation.api import ClusterApi, ClusterError
from rotation.propagation.matching import Action, match


@dataclass(frozen=True, slots=True)
class ConsumerPreview:
    """One ExternalSecret or ClusterExternalSecret that reads the secret."""

    cluster: str
    namespace: str
    kind: str
    name: str
    action: Action  # annotate, annotate-parent or report (skips are not consumers)
    reason: str
    target_secret: str
    #: ``Kind/name`` of each workload Reloader restarts when the target Secret changes
    #: (ExternalSecrets only; a ClusterExternalSecret's are its children's).
    restarts: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ClusterPreview:
    """One cluster's consumers, or why it could not be read."""

    cluster: str
    consumers: tuple[ConsumerPreview, ...] = ()
    error: str | None = None


def preview(clusters: Sequence[ClusterApi], *, vault_url: str, secret: str,
            tags: Mapping[str, str]) -> list[ClusterPreview]:
    """Every cluster's consumers of ``vault_url``/``secret``; a cluster that cannot be read
    is reported with its error and the others go on."""
    previews: list[ClusterPreview] = []
    for cluster in clusters:
        try:
            previews.append(_one(cluster, vault_url, secret, tags))
        except ClusterError as exc:
            previews.append(ClusterPreview(cluster.name, error=str(exc)))
    return previews


def _one(cluster: ClusterApi, vault_url: str, secret: str,
         tags: Mapping[str, str]) -> ClusterPreview:
    objects = cluster.eso_objects()
    index = {(str(o.get("kind")), _meta(o, "namespace"), _meta(o, "name")): o for o in objects}
    workloads: dict[str, list[dict[str, Any]]] = {}
    consumers: list[ConsumerPreview] = []
    for verdict in match(vault_url, secret, tags, objects, candidates_only=True):
        if verdict.action == "skip":
            continue
        restarts: tuple[str, ...] = ()
        if verdict.kind == "ExternalSecret":
            obj = index.get((verdict.kind, verdict.namespace, verdict.name), {})
            if verdict.namespace not in workloads:
                workloads[verdict.namespace] = cluster.workloads(verdict.namespace)
            annotations = confirm.template_annotations(obj)
            restarts = tuple(
                f"{w.get('kind')}/{_meta(w, 'name')}" for w in workloads[verdict.namespace]
                if confirm.reloader_watches(w, verdict.target_secret, annotations))
        consumers.append(ConsumerPreview(
            cluster=cluster.name, namespace=verdict.namespace, kind=verdict.kind,
            name=verdict.name, action=verdict.action, reason=verdict.reason,
            target_secret=verdict.target_secret, restarts=restarts))
    return ClusterPreview(cluster.name, tuple(consumers))


def _meta(obj: Mapping[str, Any], key: str) -> str:
    meta = obj.get("metadata")
    value = meta.get(key) if isinstance(meta, Mapping) else None
    return str(value) if value else ""
