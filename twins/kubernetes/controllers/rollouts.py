"""Rollouts of Deployments, StatefulSets and DaemonSets, progressing over a configurable time.

The twin runs no pods; this controller writes the workload ``status`` the real controllers
(deployment, statefulset, daemonset in ``kube-controller-manager``) would write while a new
pod template rolls out, so that ``kubectl rollout status`` rules
(``k8s.io/kubectl/pkg/polymorphichelpers/rollout_status.go``; reference section 5.4) report
"in progress" during the rollout and "done" at its end:

- a rollout starts when ``metadata.generation`` is above ``status.observedGeneration`` (a
  new workload, or a template change such as Reloader's); it takes ``rollout_seconds``
  (0: the final status at once), replacing one replica (one node for a DaemonSet) per
  ``rollout_seconds / replicas``;
- **Deployment**: ``observedGeneration`` at once; while rolling, one surge pod
  (``replicas = spec.replicas + 1``, ``updatedReplicas`` counting up, ``unavailableReplicas:
  1``) and ``Progressing`` True ``ReplicaSetUpdated``; done: ``replicas == updatedReplicas ==
  readyReplicas == availableReplicas == spec.replicas``, ``Progressing`` True
  ``NewReplicaSetAvailable``, ``Available`` True ``MinimumReplicasAvailable``. A paused
  Deployment (``spec.paused``) observes its generation and does not roll
  (``Progressing`` Unknown ``DeploymentPaused``);
- **StatefulSet** (``RollingUpdate``): ``updateRevision`` is the new revision, ``currentRevision``
  the old one until every replica at or above ``partition`` is updated; ``readyReplicas`` is
  one short while a pod is replaced. ``OnDelete``: the generation is observed, nothing rolls;
- **DaemonSet**: ``desiredNumberScheduled`` is ``nodes``; ``updatedNumberScheduled`` counts
  up, ``numberAvailable`` is one short while a node's pod is replaced. ``OnDelete`` as above;
- :meth:`RolloutController.fail_rollout` makes a workload's rollouts stall: its new pods never
  become ready, and a Deployment reports ``Progressing`` False ``ProgressDeadlineExceeded``
  once ``rollout_seconds`` have passed (kubectl's "exceeded its progress deadline"); a
  StatefulSet or DaemonSet simply never completes (kubectl has no deadline for them).

Revision and ReplicaSet names are ``<name>-<hash of the pod template>`` with a stand-in hash
(the real one is an FNV hash of the Go struct). Pods, ReplicaSets and ControllerRevisions are
not objects of the twin.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from twins.kubernetes.controllers.gocompat import rfc3339
from twins.kubernetes.controllers.runtime import Controller, EventRecorder, Result, WorkQueue, object_key
from twins.kubernetes.errors import ApiError
from twins.kubernetes.kinds import Obj

if TYPE_CHECKING:
    from twins.kubernetes.twin import KubernetesTwin

logger = logging.getLogger(__name__)

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet")
HASH_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # apimachinery's rand.SafeEncodeString alphabet
Key = tuple[str, str, str]  # kind, namespace, name


@dataclass
class _Rollout:
    """One rollout in progress (or stalled): the generation it rolls out, since when, how."""

    generation: int
    started: float  # monotonic
    old_revision: str
    new_revision: str
    failing: bool
    finished: bool = False  # done, or stalled for good (failing, paused, OnDelete)


def template_hash(workload: Obj) -> str:
    """A stand-in for ``pod-template-hash`` / ``controller-revision-hash``: 10 safe characters."""
    template = (workload.get("spec") or {}).get("template") or {}
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode("utf-8")).digest()
    return "".join(HASH_ALPHABET[byte % len(HASH_ALPHABET)] for byte in digest[:10])


class RolloutController(Controller):
    """Progresses workload status through rollouts; see the module docstring.

    ``rollout_seconds`` is how long a rollout takes; ``nodes`` how many nodes a DaemonSet
    runs on; ``clock`` stamps condition times; ``monotonic`` measures progress.
    """

    component = "rollouts"

    def __init__(
        self,
        twin: KubernetesTwin,
        *,
        rollout_seconds: float = 0.0,
        nodes: int = 1,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        recorder: EventRecorder | None = None,
    ) -> None:
        if rollout_seconds < 0 or nodes < 0:
            raise ValueError("rollout_seconds and nodes must not be negative")
        super().__init__(twin, recorder)
        self.rollout_seconds = rollout_seconds
        self.nodes = nodes
        self._clock = clock
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._rollouts: dict[Key, _Rollout] = {}
        self._failing: set[Key] = set()
        self._queue: WorkQueue[Key] = WorkQueue("rollouts", self._reconcile, monotonic=monotonic)

    def __repr__(self) -> str:
        return f"RolloutController(rollout_seconds={self.rollout_seconds!r}, nodes={self.nodes!r})"

    @property
    def queues(self) -> Iterable[WorkQueue[Any]]:
        """The one queue of workloads."""
        return (self._queue,)

    def busy(self) -> bool:
        """A rollout is progressing (a stalled one is not)."""
        with self._lock:
            return any(not rollout.finished for rollout in self._rollouts.values())

    def fail_rollout(self, kind: str, namespace: str, name: str, *, failing: bool = True) -> None:
        """Make the workload's rollouts stall (``failing=False``: let them complete again).

        Applies to the rollout in progress, if any, and to later ones.
        """
        if kind not in WORKLOAD_KINDS:
            raise ValueError(f"rollouts are simulated for {', '.join(WORKLOAD_KINDS)}, not {kind}")
        key = (kind, namespace, name)
        with self._lock:
            if failing:
                self._failing.add(key)
            else:
                self._failing.discard(key)
            rollout = self._rollouts.get(key)
            if rollout is not None and rollout.failing != failing:
                rollout.failing = failing
                rollout.finished = False
                rollout.started = self._monotonic()  # a healed rollout starts over
        self._queue.add(key)

    def in_progress(self) -> list[Key]:
        """Workloads whose rollout is progressing."""
        with self._lock:
            return sorted(key for key, rollout in self._rollouts.items() if not rollout.finished)

    # -- events -------------------------------------------------------------------------

    def initial_sync(self) -> None:
        """Queue every workload (those already rolled out are left alone)."""
        for kind in WORKLOAD_KINDS:
            for workload in self._list(kind):
                self._queue.add((kind, *object_key(workload)))

    def on_event(self, event_type: str, obj: Obj) -> None:
        """Queue a workload whose generation is not yet observed or differs from its rollout's."""
        kind = str(obj.get("kind", ""))
        if kind not in WORKLOAD_KINDS:
            return
        key: Key = (kind, *object_key(obj))
        generation = int(obj["metadata"].get("generation") or 0)
        with self._lock:
            if event_type == "DELETED":
                self._rollouts.pop(key, None)
                return
            rollout = self._rollouts.get(key)
            observed = int((obj.get("status") or {}).get("observedGeneration") or 0)
            wanted = rollout.generation != generation if rollout is not None else generation > observed
        if wanted:
            self._queue.add(key)

    # -- reconcile ------------------------------------------------------------------------

    def _reconcile(self, key: Key) -> Result | None:
        kind, namespace, name = key
        workload = self._get(kind, namespace, name)
        if workload is None:
            with self._lock:
                self._rollouts.pop(key, None)
            return None
        generation = int(workload["metadata"].get("generation") or 0)
        observed = int((workload.get("status") or {}).get("observedGeneration") or 0)
        with self._lock:
            rollout = self._rollouts.get(key)
            if rollout is None or rollout.generation != generation:
                if rollout is None and observed >= generation:
                    return None
                rollout = _Rollout(
                    generation=generation,
                    started=self._monotonic(),
                    old_revision=_current_revision(kind, workload),
                    new_revision=f"{name}-{template_hash(workload)}",
                    failing=key in self._failing,
                )
                self._rollouts[key] = rollout
                logger.info(
                    "rollout started workload=%s/%s/%s generation=%d", kind, namespace, name, generation
                )
            elapsed = self._monotonic() - rollout.started
            state = copy.copy(rollout)
        progress = _Progress(
            kind, workload, state, elapsed=elapsed, duration=self.rollout_seconds, nodes=self.nodes
        )
        resource_type = self._type(kind)
        now = self._clock()
        try:
            self._store.patch(
                resource_type,
                resource_type.preferred_version,
                namespace,
                name,
                lambda current: {**current, "status": progress.status(current.get("status") or {}, now)},
                subresource="status",
            )
        except ApiError as exc:
            if exc.code == 404:
                with self._lock:
                    self._rollouts.pop(key, None)
                return None
            raise
        with self._lock:
            current = self._rollouts.get(key)
            if current is not None and current.generation == generation and progress.finished:
                current.finished = True
                if progress.complete:
                    logger.info(
                        "rollout complete workload=%s/%s/%s generation=%d", kind, namespace, name, generation
                    )
        if progress.finished:
            return None
        return Result(requeue_after=progress.next_step)


def _current_revision(kind: str, workload: Obj) -> str:
    status = workload.get("status") or {}
    if kind == "StatefulSet" and status.get("updateRevision"):
        return str(status.get("updateRevision"))
    return ""


class _Progress:
    """The status of one workload ``elapsed`` seconds into a rollout."""

    def __init__(
        self, kind: str, workload: Obj, rollout: _Rollout, *, elapsed: float, duration: float, nodes: int
    ) -> None:
        self.kind = kind
        self.rollout = rollout
        self.spec: Obj = workload.get("spec") or {}
        self.name = str(workload["metadata"]["name"])
        self.replicas = self._replica_count(nodes)
        self.to_update = self._to_update()
        self.halted = self._halted()
        self.deadline_exceeded = False
        self.updated = 0  # replicas updated and ready
        self.next_step = 0.0
        past_deadline = elapsed >= duration
        if self.to_update == 0:
            self.complete = self.finished = True
        elif self.halted:
            self.complete, self.finished = False, True
        elif rollout.failing:
            self.complete = False
            self.finished = kind != "Deployment" or past_deadline
            self.deadline_exceeded = kind == "Deployment" and past_deadline
            self.next_step = max(duration - elapsed, 0.001)
        else:
            step = duration / self.to_update
            self.complete = self.finished = past_deadline
            if past_deadline:
                self.updated = self.to_update
            else:
                self.updated = min(self.to_update - 1, math.floor(elapsed / step))
                self.next_step = max(step * (self.updated + 1) - elapsed, 0.001)
        in_flight = 0 if self.complete or self.halted else 1
        self.updated_count = self.updated + in_flight  # the ready ones and the one being replaced

    def _replica_count(self, nodes: int) -> int:
        if self.kind == "DaemonSet":
            return nodes
        replicas = self.spec.get("replicas")
        return int(replicas) if replicas is not None else 1

    def _to_update(self) -> int:
        if self.kind == "StatefulSet":
            strategy = self.spec.get("updateStrategy") or {}
            partition = int((strategy.get("rollingUpdate") or {}).get("partition") or 0)
            return max(self.replicas - partition, 0)
        return self.replicas

    def _halted(self) -> bool:
        """Rolls nothing by itself: a paused Deployment, an ``OnDelete`` update strategy."""
        if self.kind == "Deployment":
            return bool(self.spec.get("paused"))
        return (self.spec.get("updateStrategy") or {}).get("type") == "OnDelete"

    def status(self, current: Obj, now: float) -> Obj:
        """The status to write, given the stored one (condition times are kept when unchanged)."""
        if self.kind == "Deployment":
            return self._deployment(current, now)
        if self.kind == "StatefulSet":
            return self._stateful_set(current)
        return self._daemon_set(current)

    def _deployment(self, current: Obj, now: float) -> Obj:
        n = self.replicas
        replica_set = f"{self.name}-{self.rollout.new_revision.rsplit('-', 1)[-1]}"
        status: Obj = {"observedGeneration": self.rollout.generation}
        if self.halted:  # the new ReplicaSet does not exist yet: nothing is updated
            kept = ("replicas", "readyReplicas", "availableReplicas")
            status.update({key: current[key] for key in kept if key in current})
            progressing = ("Unknown", "DeploymentPaused", "Deployment is paused")
        elif self.complete:
            status.update(replicas=n, updatedReplicas=n, readyReplicas=n, availableReplicas=n)
            progressing = (
                "True",
                "NewReplicaSetAvailable",
                f'ReplicaSet "{replica_set}" has successfully progressed.',
            )
        else:
            status.update(
                replicas=n + 1,  # one surge pod, not ready yet
                updatedReplicas=self.updated_count,
                readyReplicas=n,
                availableReplicas=n,
                unavailableReplicas=1,
            )
            if self.deadline_exceeded:
                message = f'ReplicaSet "{replica_set}" has timed out progressing.'
                progressing = ("False", "ProgressDeadlineExceeded", message)
            else:
                progressing = ("True", "ReplicaSetUpdated", f'ReplicaSet "{replica_set}" is progressing.')
        for key in ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas"):
            if status.get(key) == 0:
                status.pop(key)  # omitempty
        available = ("True", "MinimumReplicasAvailable", "Deployment has minimum availability.")
        conditions = _with_condition(list(current.get("conditions") or []), "Available", available, now=now)
        status["conditions"] = _with_condition(conditions, "Progressing", progressing, now=now)
        return status

    def _stateful_set(self, current: Obj) -> Obj:
        n = self.replicas
        new, old = self.rollout.new_revision, self.rollout.old_revision or self.rollout.new_revision
        status: Obj = {"observedGeneration": self.rollout.generation, "replicas": n}
        if self.halted:  # OnDelete: pods keep their revision until someone deletes them
            status.update(
                readyReplicas=int(current.get("readyReplicas") or 0),
                availableReplicas=int(current.get("availableReplicas") or 0),
                currentReplicas=int(current.get("currentReplicas") or 0),
                updatedReplicas=0,
                currentRevision=current.get("currentRevision") or old,
                updateRevision=new,
            )
        elif self.complete:
            untouched = n - self.to_update  # below the partition
            status.update(
                readyReplicas=n,
                availableReplicas=n,
                currentReplicas=n if untouched == 0 else untouched,
                updatedReplicas=self.to_update,
                currentRevision=new if untouched == 0 else old,
                updateRevision=new,
            )
        else:
            status.update(
                readyReplicas=n - 1,
                availableReplicas=n - 1,
                currentReplicas=n - self.updated_count,
                updatedReplicas=self.updated_count,
                currentRevision=old,
                updateRevision=new,
            )
        status["collisionCount"] = int(current.get("collisionCount") or 0)
        return status

    def _daemon_set(self, current: Obj) -> Obj:
        d = self.replicas
        status: Obj = {
            "observedGeneration": self.rollout.generation,
            "currentNumberScheduled": d,
            "desiredNumberScheduled": d,
            "numberMisscheduled": 0,
        }
        if self.halted:
            status.update(
                numberReady=int(current.get("numberReady") or 0),
                numberAvailable=int(current.get("numberAvailable") or 0),
                updatedNumberScheduled=0,
            )
        elif self.complete:
            status.update(numberReady=d, numberAvailable=d, updatedNumberScheduled=d)
        else:
            status.update(
                numberReady=d - 1,
                numberAvailable=d - 1,
                numberUnavailable=1,
                updatedNumberScheduled=self.updated_count,
            )
        return status


def _with_condition(
    conditions: list[Obj], condition_type: str, value: tuple[str, str, str], *, now: float
) -> list[Obj]:
    """Set a Deployment condition: ``lastUpdateTime`` now, ``lastTransitionTime`` on a flip."""
    status, reason, message = value
    current = next((c for c in conditions if c.get("type") == condition_type), None)
    if (
        current is not None
        and (current.get("status"), current.get("reason"), current.get("message")) == value
    ):
        return conditions
    stamp = rfc3339(now)
    transition = stamp
    if current is not None and current.get("status") == status and current.get("lastTransitionTime"):
        transition = current["lastTransitionTime"]
    condition = {
        "type": condition_type,
        "status": status,
        "lastUpdateTime": stamp,
        "lastTransitionTime": transition,
        "reason": reason,
        "message": message,
    }
    return [c for c in conditions if c.get("type") != condition_type] + [condition]
