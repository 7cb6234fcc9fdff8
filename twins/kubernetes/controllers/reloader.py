"""Stakater Reloader v1.4 for Secrets, as the twin runs it: roll workloads when Secret data changes.

Follows Reloader at ``655a2b38`` (chart 2.2.16, app v1.4.21 plus the fix that skips an invalid
regex): ``internal/pkg/handler/update.go`` (reload only when the SHA1 of the Secret's data
changed), ``pkg/common/common.go`` ``ShouldReload`` (which annotations select a workload),
``internal/pkg/handler/upgrade.go`` (which container gets the marker, the two strategies, the
``Reloaded``/``ReloadFail`` events) and ``internal/pkg/util/util.go`` (``GetSHAfromSecret``,
``ConvertToEnvVarName``).

On an update of a Secret whose data hash changed, for each Deployment, then DaemonSet, then
StatefulSet of the Secret's namespace:

1. the Secret's ``reloader.stakater.com/ignore: "true"`` skips everything;
2. the workload's annotations are read, or its pod template's when the workload has none of
   ``secret.reloader.stakater.com/reload``, ``reloader.stakater.com/auto``,
   ``secret.reloader.stakater.com/auto`` and ``reloader.stakater.com/search``; names listed in
   ``secrets.exclude.reloader.stakater.com/reload`` are skipped;
3. it reloads if an item of ``secret.reloader.stakater.com/reload`` (comma-separated, each an
   anchored regex ``^item$``) matches the Secret's name (then the first container is used when
   none references the Secret); or with ``reloader.stakater.com/search: "true"`` and the
   Secret's ``reloader.stakater.com/match: "true"``; or with ``reloader.stakater.com/auto`` or
   ``secret.reloader.stakater.com/auto`` true (or ``auto_reload_all``) — in the last two cases
   only if a container references the Secret (``env[].valueFrom.secretKeyRef``,
   ``envFrom[].secretRef``, a ``secret`` or ``projected`` volume it mounts; via an init
   container the first container is used);
4. ``env-vars`` strategy (default): a strategic merge patch setting ``STAKATER_<NAME>_SECRET``
   to the data's SHA1 on that container (no patch if it already has that value);
   ``annotations`` strategy: the pod template annotation
   ``reloader.stakater.com/last-reloaded-from`` with the JSON Reloader writes. Either raises
   the workload's generation; an Event ``Reloaded`` (or ``ReloadFail``) is recorded.

Not reproduced: ConfigMaps, CronJobs, Jobs and Argo Rollouts (the twin serves none of them),
``--reload-on-create``/``--reload-on-delete``, ``--sync-after-restart``, namespace and
resource selectors, the ``pause-period`` annotation, webhooks and alerts, metrics.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import itertools
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from twins.kubernetes.controllers.gocompat import go_search, parse_bool
from twins.kubernetes.controllers.runtime import Controller, EventRecorder, Result, WorkQueue, object_key
from twins.kubernetes.errors import ApiError
from twins.kubernetes.kinds import Obj
from twins.kubernetes.patch import strategic_merge_patch

if TYPE_CHECKING:
    from twins.kubernetes.twin import KubernetesTwin

logger = logging.getLogger(__name__)

Strategy = Literal["env-vars", "annotations"]
WORKLOAD_KINDS = ("Deployment", "DaemonSet", "StatefulSet")  # doRollingUpgrade's order
RELOAD_ANNOTATION = "secret.reloader.stakater.com/reload"
AUTO_ANNOTATION = "reloader.stakater.com/auto"
TYPED_AUTO_ANNOTATION = "secret.reloader.stakater.com/auto"
SEARCH_ANNOTATION = "reloader.stakater.com/search"
MATCH_ANNOTATION = "reloader.stakater.com/match"
IGNORE_ANNOTATION = "reloader.stakater.com/ignore"
EXCLUDE_ANNOTATION = "secrets.exclude.reloader.stakater.com/reload"
LAST_RELOADED_FROM = "reloader.stakater.com/last-reloaded-from"
ENV_VAR_PREFIX = "STAKATER_"
SECRET_TYPE = "SECRET"
COMPONENT = "reloader-secrets"


def secret_sha(data: Mapping[str, str] | None) -> str:
    """``GetSHAfromSecret``: SHA1 of the sorted ``key=value`` pairs joined by ``;`` (values decoded)."""
    pairs = sorted(
        key.encode("utf-8") + b"=" + base64.b64decode(value or "") for key, value in (data or {}).items()
    )
    return hashlib.sha1(b";".join(pairs), usedforsecurity=False).hexdigest()


def env_var_name(secret_name: str) -> str:
    """``STAKATER_`` + ``ConvertToEnvVarName(name)`` + ``_SECRET``."""
    converted: list[str] = []
    last_valid = False
    for char in secret_name.upper():
        if char.isascii() and char.isalnum():
            converted.append(char)
            last_valid = True
        else:
            if last_valid:
                converted.append("_")
            last_valid = False
    return f"{ENV_VAR_PREFIX}{''.join(converted)}_{SECRET_TYPE}"


@dataclass(frozen=True)
class SecretChange:
    """A Secret whose data changed: what Reloader's update handler works from."""

    namespace: str
    name: str
    annotations: Mapping[str, str]
    sha: str


@dataclass(frozen=True)
class _Decision:
    reload: bool
    auto: bool = False


class ReloaderController(Controller):
    """Reloader over the twin's store, for Secrets and Deployments/DaemonSets/StatefulSets.

    ``strategy`` is ``--reload-strategy`` (``env-vars`` or ``annotations``);
    ``auto_reload_all`` is ``--auto-reload-all``; ``clock`` stamps ``observedAt``.
    """

    component = COMPONENT

    def __init__(
        self,
        twin: KubernetesTwin,
        *,
        strategy: Strategy = "env-vars",
        auto_reload_all: bool = False,
        clock: Callable[[], float] = time.time,
        recorder: EventRecorder | None = None,
    ) -> None:
        if strategy not in ("env-vars", "annotations"):
            raise ValueError(f"unknown reload strategy {strategy!r}")
        super().__init__(twin, recorder)
        self.strategy: Strategy = strategy
        self.auto_reload_all = auto_reload_all
        self._clock = clock
        self._lock = threading.Lock()
        self._hashes: dict[tuple[str, str], str] = {}
        self._changes: dict[int, SecretChange] = {}
        self._sequence = itertools.count()
        self._queue: WorkQueue[int] = WorkQueue("reloader", self._handle)

    def __repr__(self) -> str:
        return f"ReloaderController(strategy={self.strategy!r})"

    @property
    def queues(self) -> Iterable[WorkQueue[Any]]:
        """The one queue of Secret changes."""
        return (self._queue,)

    def initial_sync(self) -> None:
        """Remember the data hash of every Secret (the informer's first list reloads nothing)."""
        with self._lock:
            for secret in self._list("Secret"):
                self._hashes[object_key(secret)] = secret_sha(secret.get("data"))

    def on_event(self, event_type: str, obj: Obj) -> None:
        """Queue a change when an updated Secret's data hash differs from the one before."""
        if obj.get("kind") != "Secret":
            return
        key = object_key(obj)
        sha = secret_sha(obj.get("data"))
        with self._lock:
            if event_type == "DELETED":
                self._hashes.pop(key, None)
                return
            old = self._hashes.get(key)
            self._hashes[key] = sha
            if event_type != "MODIFIED" or old is None or old == sha:
                return
            sequence = next(self._sequence)
            annotations = dict(obj["metadata"].get("annotations") or {})
            self._changes[sequence] = SecretChange(key[0], key[1], annotations, sha)
        self._queue.add(sequence)

    def _handle(self, sequence: int) -> Result | None:
        with self._lock:
            change = self._changes.pop(sequence, None)
        if change is None:
            return None
        for kind in WORKLOAD_KINDS:
            for workload in self._list(kind, change.namespace):
                self._upgrade(kind, workload, change)
        return None

    def _upgrade(self, kind: str, workload: Obj, change: SecretChange) -> None:
        namespace, name = object_key(workload)
        decision = self._should_reload(workload, change)
        if not decision.reload:
            return
        patch = self._strategy_patch(workload, change, auto=decision.auto)
        if patch is None:
            return
        resource_type = self._type(kind)
        try:
            self._store.patch(
                resource_type,
                resource_type.preferred_version,
                namespace,
                name,
                lambda current: strategic_merge_patch(current, patch),
            )
        except ApiError as exc:
            message = (
                f"Update for '{name}' of type '{kind}' in namespace '{namespace}' "
                f"failed with error {exc.message}"
            )
            logger.warning("reloader update failed workload=%s/%s/%s error=%s", kind, namespace, name, exc)
            self.recorder.record(workload, "Warning", "ReloadFail", message, COMPONENT)
            return
        message = (
            f"Changes detected in '{change.name}' of type '{SECRET_TYPE}' in namespace '{namespace}', "
            f"Updated '{name}' of type '{kind}' in namespace '{namespace}'"
        )
        logger.info("reloader reloaded workload=%s/%s/%s secret=%s", kind, namespace, name, change.name)
        self.recorder.record(workload, "Normal", "Reloaded", message, COMPONENT)

    def _should_reload(self, workload: Obj, change: SecretChange) -> _Decision:
        """``ShouldReload`` for a Secret."""
        if change.annotations.get(IGNORE_ANNOTATION) == "true":
            return _Decision(reload=False)
        annotations: Mapping[str, str] = workload["metadata"].get("annotations") or {}
        exclude = annotations.get(EXCLUDE_ANNOTATION)
        selecting = (RELOAD_ANNOTATION, AUTO_ANNOTATION, TYPED_AUTO_ANNOTATION, SEARCH_ANNOTATION)
        if not any(key in annotations for key in selecting):
            template_metadata = ((workload.get("spec") or {}).get("template") or {}).get("metadata") or {}
            annotations = template_metadata.get("annotations") or {}
        if exclude and change.name in (item.strip() for item in exclude.split(",")):
            return _Decision(reload=False)
        for item in str(annotations.get(RELOAD_ANNOTATION, "")).split(","):
            if go_search(f"^{item.strip()}$", change.name):
                return _Decision(reload=True)
        if (
            annotations.get(SEARCH_ANNOTATION) == "true"
            and change.annotations.get(MATCH_ANNOTATION) == "true"
        ):
            return _Decision(reload=True, auto=True)
        auto = annotations.get(AUTO_ANNOTATION, "")
        typed_auto = annotations.get(TYPED_AUTO_ANNOTATION, "")
        if (
            parse_bool(auto)
            or parse_bool(typed_auto)
            or (not auto and not typed_auto and self.auto_reload_all)
        ):
            return _Decision(reload=True, auto=True)
        return _Decision(reload=False)

    def _strategy_patch(self, workload: Obj, change: SecretChange, *, auto: bool) -> Obj | None:
        """The strategic merge patch Reloader sends, or None (no container, already current)."""
        pod = ((workload.get("spec") or {}).get("template") or {}).get("spec") or {}
        container = _container_using(pod, change.name, auto=auto)
        if container is None:
            logger.debug("reloader no container workload=%s secret=%s", object_key(workload), change.name)
            return None
        if self.strategy == "annotations":
            source = {
                "type": SECRET_TYPE,
                "name": change.name,
                "namespace": change.namespace,
                "hash": change.sha,
                "containerRefs": [container["name"]],
                "observedAt": int(self._clock()),
            }
            value = json.dumps(source, separators=(",", ":"))
            return {"spec": {"template": {"metadata": {"annotations": {LAST_RELOADED_FROM: value}}}}}
        variable = env_var_name(change.name)
        for env in container.get("env") or []:
            if env.get("name") == variable:
                if env.get("value") == change.sha:
                    return None  # NotUpdated: the container already has this hash
                break
        env_patch = [{"name": variable, "value": change.sha}]
        return {
            "spec": {"template": {"spec": {"containers": [{"name": container["name"], "env": env_patch}]}}}
        }


def _container_using(pod: Obj, secret_name: str, *, auto: bool) -> Obj | None:
    """``getContainerUsingResource``: the container whose env or mounts use the Secret."""
    containers: list[Obj] = list(pod.get("containers") or [])
    init_containers: list[Obj] = list(pod.get("initContainers") or [])
    first = copy.deepcopy(containers[0]) if containers else None
    volume = _volume_for(pod.get("volumes") or [], secret_name)
    if volume:
        found = _mounting(containers, volume)
        if found is not None:
            return found
        if init_containers and _mounting(init_containers, volume) is not None:
            return first
    found = _referencing(containers, secret_name)
    if found is None and init_containers and _referencing(init_containers, secret_name) is not None:
        return first
    if found is None and not auto:
        return first
    return found


def _volume_for(volumes: list[Obj], secret_name: str) -> str:
    for volume in volumes:
        if (volume.get("secret") or {}).get("secretName") == secret_name:
            return str(volume.get("name", ""))
        for source in (volume.get("projected") or {}).get("sources") or []:
            if (source.get("secret") or {}).get("name") == secret_name:
                return str(volume.get("name", ""))
    return ""


def _mounting(containers: list[Obj], volume: str) -> Obj | None:
    for container in containers:
        if any(mount.get("name") == volume for mount in container.get("volumeMounts") or []):
            return container
    return None


def _referencing(containers: list[Obj], secret_name: str) -> Obj | None:
    for container in containers:
        for env in container.get("env") or []:
            if ((env.get("valueFrom") or {}).get("secretKeyRef") or {}).get("name") == secret_name:
                return container
        for source in container.get("envFrom") or []:
            if (source.get("secretRef") or {}).get("name") == secret_name:
                return container
    return None
