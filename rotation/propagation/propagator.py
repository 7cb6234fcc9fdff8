"""Carry a new Key Vault version into the clusters: annotate, then confirm on later checks.

:meth:`Propagator.trigger` runs once per rotation (the ``propagated`` step). Per cluster it
lists the ESO objects, matches them (:mod:`rotation.propagation.matching`), records every
consumer with what its status said *before* (``syncedResourceVersion``, ``refreshTime``) and
the generation and Reloader marker of each workload that Reloader restarts for its Secret,
has that plan journaled, and only then patches ``external-secrets.io/force-sync``. The
annotation's value is the rotation id: a resumed attempt patches the same value again, which
changes nothing and so triggers no second sync.

:meth:`Propagator.check` runs on each later visit (the sweeper): ESO synced after the patch
(:func:`~rotation.propagation.confirm.sync_state`), then each workload's generation rose, its
marker changed and its rollout finished (:func:`~rotation.propagation.confirm.rollout_state`).
A cluster that cannot be reached is named in ``errors``; the others go on, and it is tried
again (planned, patched or checked) on the next visit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from rotation.propagation import confirm
from rotation.propagation.api import ClusterApi, ClusterError
from rotation.propagation.matching import Verdict, match
from rotation.propagation.progress import (
    MAX_TRACKED,
    ConsumerProgress,
    Propagation,
    WorkloadProgress,
)

logger = logging.getLogger(__name__)
Clock = Callable[[], datetime]
Save = Callable[[Propagation], None]
_ESO_KINDS = ("ExternalSecret", "ClusterExternalSecret")


class Propagator:
    """Annotates and confirms ESO consumers in every configured cluster."""

    def __init__(self, clusters: Callable[[], Sequence[ClusterApi]], clock: Clock) -> None:
        self._clusters = clusters
        self._clock = clock

    def trigger(self, state: Propagation, *, vault_url: str, secret: str,
                tags: Mapping[str, str], value: str, save: Save) -> Propagation:
        """Plan and patch every cluster not done yet; one that cannot be reached is named in
        the result's ``errors`` (after saving what the others did), to be tried again."""
        errors: list[str] = []
        for cluster in self._reachable(errors):
            try:
                if cluster.name not in state.planned:
                    state = self._plan(cluster, state, vault_url=vault_url, secret=secret, tags=tags)
                    save(state)  # the "before" snapshot is durable before anything changes
                if any(c.cluster == cluster.name and c.state == "planned" for c in state.consumers):
                    state = self._patch(cluster, state, value)  # also after a crash in between
                    save(state)
            except PartlyPatched as exc:
                state = exc.state
                save(state)
                errors.append(f"{cluster.name}: {exc}")
            except ClusterError as exc:
                errors.append(f"{cluster.name}: {exc}")
        return state.with_changes(errors=tuple(errors))

    def check(self, state: Propagation) -> Propagation:
        """One look at every consumer still waiting; clusters that fail to answer are added
        to ``errors``."""
        errors: list[str] = list(state.errors)
        clusters = {c.name: c for c in self._reachable(errors)}
        consumers: list[ConsumerProgress] = []
        workloads: dict[tuple[str, str], dict[tuple[str, str], dict[str, Any]]] = {}
        down: set[str] = set()
        for consumer in state.consumers:
            cluster = clusters.get(consumer.cluster)
            if consumer.settled or consumer.cluster in down:
                consumers.append(consumer)
                continue
            if cluster is None:
                errors.append(f"{consumer.cluster}: no longer configured")
                down.add(consumer.cluster)
                consumers.append(consumer)
                continue
            try:
                consumers.append(self._check_one(cluster, consumer, workloads))
            except ClusterError as exc:
                errors.append(f"{cluster.name}: {exc}")
                down.add(cluster.name)
                consumers.append(consumer)
        return state.with_changes(consumers=tuple(consumers), errors=tuple(errors))

    # -- planning and patching ---------------------------------------------------------------

    def _reachable(self, errors: list[str]) -> list[ClusterApi]:
        try:
            return list(self._clusters())
        except ClusterError as exc:
            errors.append(str(exc))
            return []

    def _plan(self, cluster: ClusterApi, state: Propagation, *, vault_url: str, secret: str,
              tags: Mapping[str, str]) -> Propagation:
        objects = cluster.eso_objects()
        index = _by_identity(objects)
        planned: list[ConsumerProgress] = []
        untracked = 0
        watched: dict[str, list[dict[str, Any]]] = {}
        for verdict in match(vault_url, secret, tags, objects, candidates_only=True):
            if verdict.action == "skip":
                continue
            if len(state.consumers) + len(planned) >= MAX_TRACKED:
                untracked += 1
                continue
            obj = index.get((verdict.kind, verdict.namespace, verdict.name), {})
            planned.append(self._consumer(cluster, verdict, obj, watched))
        logger.info("propagation planned", extra={
            "cluster": cluster.name, "consumers": len(planned),
            "annotate": sum(c.action in ("annotate", "annotate-parent") for c in planned)})
        return state.with_changes(planned=(*state.planned, cluster.name),
                                  consumers=(*state.consumers, *planned),
                                  untracked=state.untracked + untracked)

    def _consumer(self, cluster: ClusterApi, verdict: Verdict, obj: Mapping[str, Any],
                  watched: dict[str, list[dict[str, Any]]]) -> ConsumerProgress:
        before = confirm.before(obj)
        consumer = ConsumerProgress(
            cluster=cluster.name, namespace=verdict.namespace, kind=verdict.kind,
            name=verdict.name, api_version=str(obj.get("apiVersion") or "external-secrets.io/v1"),
            action=verdict.action, reason=verdict.reason, target_secret=verdict.target_secret,
            parent=verdict.parent if verdict.action == "annotate-parent" else None,
            planned_at=self._clock(),
            synced_version_before=before.synced_resource_version,
            refresh_time_before=before.refresh_time,
            state="reported" if verdict.action == "report" else "planned")
        if verdict.kind != "ExternalSecret" or verdict.action == "report":
            return consumer
        if verdict.namespace not in watched:
            watched[verdict.namespace] = cluster.workloads(verdict.namespace)
        secret_annotations = confirm.template_annotations(obj)
        return replace(consumer, workloads=tuple(
            WorkloadProgress(kind=str(w.get("kind")), name=_name(w),
                             generation_before=_generation(w),
                             marker_before=confirm.reloader_marker(w, verdict.target_secret))
            for w in watched[verdict.namespace]
            if confirm.reloader_watches(w, verdict.target_secret, secret_annotations)))

    def _patch(self, cluster: ClusterApi, state: Propagation, value: str) -> Propagation:
        """Annotate each planned consumer (its parent CES once); saves what was done before
        a failure (:class:`PartlyPatched`), so a retry does not patch those again."""
        patched: dict[tuple[str, str], datetime | None] = {}  # (kind, name@namespace) -> when
        consumers: list[ConsumerProgress] = []
        failure: ClusterError | None = None
        for consumer in state.consumers:
            if failure is not None or consumer.cluster != cluster.name or consumer.state != "planned":
                consumers.append(consumer)
                continue
            kind, namespace, name = consumer.kind, consumer.namespace, consumer.name
            if consumer.parent is not None:  # the ClusterExternalSecret that rewrites it
                kind, namespace, name = "ClusterExternalSecret", "", consumer.parent
            key = (kind, f"{name}@{namespace}")
            if key not in patched:
                started = self._clock()
                try:
                    found = cluster.force_sync(consumer.api_version, kind, namespace, name, value)
                except ClusterError as exc:
                    failure = exc
                    consumers.append(consumer)
                    continue
                patched[key] = started if found is not None else None
            consumers.append(_patched(consumer, patched[key], kind, name))
        state = state.with_changes(consumers=tuple(consumers))
        if failure is not None:
            raise PartlyPatched(str(failure), state)
        return state

    # -- confirming --------------------------------------------------------------------------

    def _check_one(self, cluster: ClusterApi, consumer: ConsumerProgress,
                   cache: dict[tuple[str, str], dict[tuple[str, str], dict[str, Any]]]) -> ConsumerProgress:
        now = self._clock()
        if consumer.state in ("patched", "failed") and consumer.patched_at is not None:
            es = cluster.get(consumer.api_version, consumer.kind, consumer.namespace, consumer.name)
            if es is None:
                return replace(consumer, state="confirmed", confirmed_at=now,
                               detail="the ExternalSecret no longer exists")
            recorded = confirm.Before(consumer.synced_version_before, consumer.refresh_time_before)
            outcome = confirm.sync_state(es, recorded, consumer.planned_at or consumer.patched_at)
            if outcome.state != "done":
                return replace(consumer, state="failed" if outcome.state == "failed" else "patched",
                               detail=outcome.reason)
            consumer = replace(consumer, state="synced", synced_at=now, detail=outcome.reason)
        if consumer.state != "synced":
            return consumer
        key = (cluster.name, consumer.namespace)
        if key not in cache:
            cache[key] = {(str(w.get("kind")), _name(w)): w for w in cluster.workloads(consumer.namespace)}
        workloads = tuple(_rolled(w, cache[key].get((w.kind, w.name)), consumer.target_secret, now)
                          for w in consumer.workloads)
        if all(w.state == "rolled-out" for w in workloads):
            return replace(consumer, workloads=workloads, state="confirmed", confirmed_at=now,
                           detail=f"synced; {len(workloads)} workload(s) rolled out")
        waiting = next(w for w in workloads if w.state != "rolled-out")
        return replace(consumer, workloads=workloads,
                       detail=f"{waiting.kind}/{waiting.name}: {waiting.reason}")


def _patched(consumer: ConsumerProgress, at: datetime | None, kind: str, name: str) -> ConsumerProgress:
    if at is None:
        return replace(consumer, state="confirmed", confirmed_at=consumer.planned_at,
                       detail=f"{kind}/{name} no longer exists")
    if consumer.kind == "ClusterExternalSecret":
        return replace(consumer, state="confirmed", patched_at=at, confirmed_at=at,
                       detail="annotated; its ExternalSecrets are confirmed one by one")
    return replace(consumer, state="patched", patched_at=at, detail="annotated; waiting for ESO")


class PartlyPatched(ClusterError):
    """Patching stopped at a cluster error; ``state`` holds the consumers patched before it."""

    def __init__(self, message: str, state: Propagation) -> None:
        super().__init__(message)
        self.state = state


def _rolled(recorded: WorkloadProgress, workload: Mapping[str, Any] | None, secret: str,
            now: datetime) -> WorkloadProgress:
    """Reloader restarted it for this change, and kubectl would call the rollout complete."""
    if recorded.state == "rolled-out":
        return recorded
    if workload is None:
        return replace(recorded, state="rolled-out", rolled_out_at=now, reason="no longer exists")
    if _generation(workload) <= recorded.generation_before \
            or confirm.reloader_marker(workload, secret) == recorded.marker_before:
        return replace(recorded, state="waiting", reason="Reloader has not restarted it yet")
    outcome = confirm.rollout_state(workload)
    if outcome.state == "done":
        return replace(recorded, state="rolled-out", rolled_out_at=now, reason=outcome.reason)
    return replace(recorded, state="failed" if outcome.state == "failed" else "waiting",
                   reason=outcome.reason)


def _by_identity(objects: Sequence[Mapping[str, object]]) -> dict[tuple[str, str, str], Mapping[str, Any]]:
    """ES and CES by (kind, namespace, name); ``external-secrets.io/v1`` wins over v1beta1."""
    found: dict[tuple[str, str, str], Mapping[str, Any]] = {}
    for obj in objects:
        kind = obj.get("kind")
        meta = obj.get("metadata")
        if kind not in _ESO_KINDS or not isinstance(meta, Mapping):
            continue
        key = (str(kind), str(meta.get("namespace") or ""), str(meta.get("name")))
        if key not in found or obj.get("apiVersion") == "external-secrets.io/v1":
            found[key] = obj
    return found


def _name(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata")
    return str(meta.get("name")) if isinstance(meta, Mapping) else ""


def _generation(obj: Mapping[str, Any]) -> int:
    meta = obj.get("metadata")
    value = meta.get("generation") if isinstance(meta, Mapping) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
