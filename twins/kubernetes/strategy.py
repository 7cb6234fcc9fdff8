"""What a write does to an object before it is validated and stored, kind by kind.

The API server's registry strategies (``PrepareForCreate``/``PrepareForUpdate`` in
``pkg/registry/...`` and ``apiextensions-apiserver/pkg/registry/customresource/strategy.go``)
and defaulting (``pkg/apis/*/v1/defaults.go``), reduced to what clients observe:

- **status is the status subresource's business**: a create clears it, a write to the main
  resource keeps the stored status whatever the body says, a write to ``/status`` keeps
  everything *but* the status from the stored object
  (https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#status-subresource);
- **generation** starts at 1 and goes up by one when the kind's watched part changes
  (:attr:`~twins.kubernetes.kinds.ResourceType.generation`); server-owned metadata
  (``uid``, ``creationTimestamp``, ``generation``, ``deletionTimestamp``) cannot be changed
  by a client;
- **Secrets** fold ``stringData`` into base64 ``data`` and default ``type: Opaque``;
  **Namespaces** get ``spec.finalizers: [kubernetes]``, ``status.phase: Active`` and the
  ``kubernetes.io/metadata.name`` label; **workloads** get the apps/v1 defaults of the fields
  a client is likely to read back (replicas, strategies, history limit, pod template basics).
"""

from __future__ import annotations

import base64
import copy
from typing import Any

from twins.kubernetes.kinds import Obj, ResourceType

SYSTEM_METADATA = (
    "uid",
    "creationTimestamp",
    "generation",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
)
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
EMPTY_STATUS: dict[str, Obj] = {
    "StatefulSet": {"replicas": 0, "availableReplicas": 0},
    "DaemonSet": {
        "currentNumberScheduled": 0,
        "numberMisscheduled": 0,
        "desiredNumberScheduled": 0,
        "numberReady": 0,
    },
}
"""A new object's status as the server serializes it: the fields without ``omitempty`` (the
client's models require them)."""


def prepare_for_create(resource_type: ResourceType, obj: Obj) -> Obj:
    """A copy of ``obj`` as a create stores it (status cleared, generation 1, defaults applied)."""
    result = copy.deepcopy(obj)
    metadata = result.setdefault("metadata", {})
    for key in SYSTEM_METADATA:
        metadata.pop(key, None)
    if "status" in resource_type.subresources:
        result.pop("status", None)
        if not resource_type.custom:
            result["status"] = copy.deepcopy(EMPTY_STATUS.get(resource_type.kind, {}))
    if resource_type.generation is not None:
        metadata["generation"] = 1
    _apply_defaults(resource_type, result)
    return result


def prepare_for_update(resource_type: ResourceType, obj: Obj, old: Obj, subresource: str | None) -> Obj:
    """A copy of ``obj`` as an update of ``old`` stores it, via the main resource or ``/status``."""
    if subresource == "status":
        result = copy.deepcopy(old)
        if "status" in obj:
            result["status"] = copy.deepcopy(obj["status"])
        else:
            result.pop("status", None)
        return result
    result = copy.deepcopy(obj)
    if "status" in resource_type.subresources:
        if "status" in old:
            result["status"] = copy.deepcopy(old["status"])
        else:
            result.pop("status", None)
    metadata = result.setdefault("metadata", {})
    old_metadata = old.get("metadata", {})
    for key in SYSTEM_METADATA:
        if key == "uid" and metadata.get("uid"):
            continue  # a different uid is refused by the store, not silently replaced
        if key in old_metadata:
            metadata[key] = old_metadata[key]
        else:
            metadata.pop(key, None)
    _apply_defaults(resource_type, result)
    return result


def bump_generation(resource_type: ResourceType, new: Obj, old: Obj) -> None:
    """Raise ``metadata.generation`` by one if what the kind's generation tracks changed."""
    if resource_type.generation is None:
        return
    if _generation_view(resource_type, new) != _generation_view(resource_type, old):
        new["metadata"]["generation"] = int(old.get("metadata", {}).get("generation") or 0) + 1


def _generation_view(resource_type: ResourceType, obj: Obj) -> Any:
    if resource_type.generation == "non-metadata":
        return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}
    if resource_type.generation == "spec+annotations":
        return obj.get("spec"), obj.get("metadata", {}).get("annotations") or {}
    return obj.get("spec")


def _apply_defaults(resource_type: ResourceType, obj: Obj) -> None:
    if resource_type.custom:
        return
    if resource_type.kind == "Secret":
        _secret_defaults(obj)
    elif resource_type.kind == "Namespace":
        _namespace_defaults(obj)
    elif resource_type.group == "apps":
        _workload_defaults(resource_type.kind, obj)


def _secret_defaults(obj: Obj) -> None:
    string_data = obj.pop("stringData", None)
    if isinstance(string_data, dict) and string_data:
        data = obj.get("data") or {}
        for key, value in string_data.items():
            data[key] = base64.b64encode(str(value).encode("utf-8")).decode("ascii")
        obj["data"] = data
    obj.setdefault("type", "Opaque")


def _namespace_defaults(obj: Obj) -> None:
    obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
    status = obj.get("status")
    if not status:
        obj["status"] = {"phase": "Active"}
    metadata = obj["metadata"]
    if metadata.get("name"):
        metadata.setdefault("labels", {})[NAMESPACE_NAME_LABEL] = metadata["name"]


def _workload_defaults(kind: str, obj: Obj) -> None:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    spec.setdefault("revisionHistoryLimit", 10)
    if kind == "Deployment":
        spec.setdefault("replicas", 1)
        spec.setdefault("progressDeadlineSeconds", 600)
        spec.setdefault("strategy", {"type": "RollingUpdate"})
        if spec["strategy"].get("type") == "RollingUpdate":
            spec["strategy"].setdefault("rollingUpdate", {"maxUnavailable": "25%", "maxSurge": "25%"})
    elif kind == "StatefulSet":
        spec.setdefault("replicas", 1)
        spec.setdefault("podManagementPolicy", "OrderedReady")
        spec.setdefault("updateStrategy", {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
    else:
        spec.setdefault("updateStrategy", {"type": "RollingUpdate"})
        if spec["updateStrategy"].get("type") == "RollingUpdate":
            spec["updateStrategy"].setdefault("rollingUpdate", {"maxUnavailable": 1, "maxSurge": 0})
    pod = (spec.get("template") or {}).get("spec")
    if isinstance(pod, dict):
        _pod_defaults(pod)


def _pod_defaults(pod: Obj) -> None:
    pod.setdefault("restartPolicy", "Always")
    pod.setdefault("dnsPolicy", "ClusterFirst")
    pod.setdefault("terminationGracePeriodSeconds", 30)
    pod.setdefault("schedulerName", "default-scheduler")
    pod.setdefault("securityContext", {})
    for container in [*(pod.get("containers") or []), *(pod.get("initContainers") or [])]:
        if not isinstance(container, dict):
            continue
        image = str(container.get("image") or "")
        tag = image.rsplit("/", 1)[-1].partition(":")[2]
        always = "@" not in image and tag in ("", "latest")  # by digest or a fixed tag: IfNotPresent
        container.setdefault("imagePullPolicy", "Always" if always else "IfNotPresent")
        container.setdefault("terminationMessagePath", "/dev/termination-log")
        container.setdefault("terminationMessagePolicy", "File")
        container.setdefault("resources", {})
