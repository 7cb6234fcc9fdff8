"""What the journal remembers of a rotation's propagation: one entry per consumer, no values.

Propagation spans several invocations (the patch in one, the confirmations on later sweeps),
so everything a later worker needs is here: which objects were planned in which cluster, what
each ExternalSecret's status said *before* the patch (the only way to tell a new sync from an
old one), when the patch went out, and each workload's generation and Reloader marker before
it. It is stored as one compact JSON text in the rotation's journal record.

Consumer states, in order::

    planned ─► patched ─► synced ─► confirmed        (or failed / reported)

``confirmed`` means ESO synced after the patch and every workload Reloader restarts for the
target Secret finished its rollout. ``reported`` is a consumer force-sync cannot refresh
(pinned to a version, ``CreatedOnce``, ``refreshInterval: 0``): it never confirms.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal

ConsumerState = Literal["planned", "patched", "synced", "confirmed", "failed", "reported"]
WorkloadState = Literal["waiting", "rolled-out", "failed"]
SETTLED: frozenset[str] = frozenset({"confirmed", "reported"})
#: A rotation tracks at most this many consumers (the journal row has a size limit); the
#: rest are still annotated, and the history says how many were not tracked.
MAX_TRACKED = 400
_REASON_CHARS = 240


@dataclass(frozen=True, slots=True)
class WorkloadProgress:
    """A Deployment, StatefulSet or DaemonSet that Reloader restarts for the target Secret."""

    kind: str
    name: str
    generation_before: int
    marker_before: str  # Reloader's marker for this Secret before the sync ("" if none)
    state: WorkloadState = "waiting"
    reason: str = ""
    rolled_out_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ConsumerProgress:
    """One ExternalSecret or ClusterExternalSecret the rotation touches or reports."""

    cluster: str
    namespace: str  # "" for a ClusterExternalSecret
    kind: str
    name: str
    api_version: str
    action: str  # the matching verdict: annotate, annotate-parent, report
    reason: str
    target_secret: str
    parent: str | None = None  # the ClusterExternalSecret patched instead (annotate-parent)
    synced_version_before: str | None = None
    refresh_time_before: str | None = None
    state: ConsumerState = "planned"
    detail: str = ""  # the latest check's reason
    planned_at: datetime | None = None  # before the patch: a sync after it read the new version
    patched_at: datetime | None = None
    synced_at: datetime | None = None
    confirmed_at: datetime | None = None
    workloads: tuple[WorkloadProgress, ...] = ()

    @property
    def label(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.cluster}:{where}{self.kind}/{self.name}"

    @property
    def settled(self) -> bool:
        return self.state in SETTLED


@dataclass(frozen=True, slots=True)
class Propagation:
    """Every cluster's part in one rotation's propagation."""

    planned: tuple[str, ...] = ()  # clusters whose consumers are recorded (maybe none)
    consumers: tuple[ConsumerProgress, ...] = ()
    untracked: int = 0  # consumers annotated beyond MAX_TRACKED
    errors: tuple[str, ...] = ()  # the latest failure per cluster that could not be read
    failed_checks: int = 0  # consecutive checks that failed to reach a cluster (back-off)
    warning: str | None = None  # set when retirement went on without every confirmation

    def with_changes(self, **changes: Any) -> Propagation:
        return replace(self, **changes)

    @property
    def unconfirmed(self) -> list[ConsumerProgress]:
        return [c for c in self.consumers if c.state != "confirmed"]

    @property
    def waiting(self) -> list[ConsumerProgress]:
        """Consumers a later check may still confirm."""
        return [c for c in self.consumers if not c.settled]

    @property
    def open(self) -> bool:
        """Something a later visit may still change: a waiting consumer, a failing cluster."""
        return bool(self.waiting or self.errors)

    @property
    def done(self) -> bool:
        """Every consumer confirmed, and every cluster answered."""
        return not self.unconfirmed and not self.errors


def encode(propagation: Propagation) -> str:
    """Compact JSON for the journal; reasons are cut so one consumer stays small."""
    return json.dumps(_plain(propagation), separators=(",", ":"), sort_keys=True)


def decode(text: str) -> Propagation:
    data = json.loads(text)
    consumers = tuple(
        ConsumerProgress(**{
            **item,
            **{key: _instant(item.get(key))
               for key in ("planned_at", "patched_at", "synced_at", "confirmed_at")},
            "workloads": tuple(WorkloadProgress(**{**w, "rolled_out_at": _instant(w.get("rolled_out_at"))})
                               for w in item.get("workloads", ())),
        })
        for item in data.get("consumers", ()))
    return Propagation(planned=tuple(data.get("planned", ())), consumers=consumers,
                       untracked=int(data.get("untracked", 0)), errors=tuple(data.get("errors", ())),
                       failed_checks=int(data.get("failed_checks", 0)), warning=data.get("warning"))


def summary(propagation: Propagation) -> dict[str, object]:
    """The propagation in a list of rotations: counts, not each consumer (there may be
    hundreds per rotation and fifty rotations per page)."""
    states = [c.state for c in propagation.consumers]
    return {"clusters": list(propagation.planned), "errors": list(propagation.errors),
            "untracked": propagation.untracked, "warning": propagation.warning,
            "consumers": len(states), "confirmed": states.count("confirmed")}


def public(propagation: Propagation) -> dict[str, object]:
    """The propagation as operators see it in a rotation's history."""
    def iso(moment: datetime | None) -> str | None:
        return moment.isoformat(timespec="seconds") if moment else None

    return {
        "clusters": list(propagation.planned),
        "errors": list(propagation.errors),
        "untracked": propagation.untracked,
        "warning": propagation.warning,
        "consumers": [{
            "cluster": c.cluster, "namespace": c.namespace, "kind": c.kind, "name": c.name,
            "verdict": c.action, "reason": c.reason, "state": c.state, "detail": c.detail,
            "targetSecret": c.target_secret, "patchedVia": c.parent,
            "patchedAt": iso(c.patched_at), "syncedAt": iso(c.synced_at),
            "rolloutDoneAt": iso(c.confirmed_at) if c.state == "confirmed" else None,
            "workloads": [{"kind": w.kind, "name": w.name, "state": w.state, "reason": w.reason,
                           "rolledOutAt": iso(w.rolled_out_at)} for w in c.workloads],
        } for c in propagation.consumers],
    }


def _plain(propagation: Propagation) -> dict[str, Any]:
    def consumer(c: ConsumerProgress) -> dict[str, Any]:
        return {
            "cluster": c.cluster, "namespace": c.namespace, "kind": c.kind, "name": c.name,
            "api_version": c.api_version, "action": c.action, "reason": c.reason[:_REASON_CHARS],
            "target_secret": c.target_secret, "parent": c.parent,
            "synced_version_before": c.synced_version_before,
            "refresh_time_before": c.refresh_time_before, "state": c.state,
            "detail": c.detail[:_REASON_CHARS], "planned_at": _text(c.planned_at),
            "patched_at": _text(c.patched_at),
            "synced_at": _text(c.synced_at), "confirmed_at": _text(c.confirmed_at),
            "workloads": [{"kind": w.kind, "name": w.name, "generation_before": w.generation_before,
                           "marker_before": w.marker_before, "state": w.state,
                           "reason": w.reason[:_REASON_CHARS], "rolled_out_at": _text(w.rolled_out_at)}
                          for w in c.workloads],
        }

    return {"planned": list(propagation.planned),
            "consumers": [consumer(c) for c in propagation.consumers],
            "untracked": propagation.untracked, "errors": list(propagation.errors),
            "failed_checks": propagation.failed_checks, "warning": propagation.warning}


def _text(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat(timespec="microseconds") if moment else None


def _instant(text: object) -> datetime | None:
    return datetime.fromisoformat(text).astimezone(UTC) if isinstance(text, str) else None


__all__ = ["MAX_TRACKED", "ConsumerProgress", "ConsumerState", "Propagation", "WorkloadProgress",
           "decode", "encode", "public", "summary"]
