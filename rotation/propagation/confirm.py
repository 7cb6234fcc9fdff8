"""Did ESO re-sync, and did the workloads Reloader restarts finish rolling out? Pure, no I/O.

The rules come from ESO's and kubectl's own code (../shared/reference/eso-and-reloader.md
§2 and §5.4, citing ``apis/externalsecrets/v1/externalsecret_types.go``,
``pkg/controllers/externalsecret/externalsecret_controller.go`` and kubectl's
``pkg/polymorphichelpers/rollout_status.go``), so that the propagation step can decide from
objects it reads with ``get``/``list`` alone and never needs to read a Secret's data.

- :func:`force_sync_patch`: the merge patch that makes ESO re-sync now (any new value of the
  ``external-secrets.io/force-sync`` annotation changes the object's metadata hash).
- :class:`Before` / :func:`sync_state`: ESO writes ``status.syncedResourceVersion``
  (``"<generation>-<metadata hash>"``) and ``status.refreshTime`` (second precision) only
  when a sync succeeds, so a sync requested at ``patched_at`` is done when the version moved
  away from the recorded one, its generation prefix is the current generation, ``Ready`` is
  True with reason ``SecretSynced``, and ``refreshTime`` is at or after the patch (seconds,
  with the controller's clock-skew allowance). ``Ready`` False with ``SecretSyncedError``
  after the patch is a failure with ESO's message.
- :func:`rollout_state`: kubectl's rollout-status rules for Deployments, StatefulSets and
  DaemonSets; a Deployment whose ``Progressing`` condition says ``ProgressDeadlineExceeded``
  has failed.
- :func:`reloader_watches`: whether Reloader restarts a workload when a Secret changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from rotation.propagation.goregexp import compile_go

FORCE_SYNC = "external-secrets.io/force-sync"
CLOCK_SKEW = timedelta(seconds=5)

State = Literal["done", "waiting", "failed"]


@dataclass(frozen=True, slots=True)
class Outcome:
    """Where a consumer stands, and why (for the rotation's history)."""

    state: State
    reason: str


@dataclass(frozen=True, slots=True)
class Before:
    """What an ExternalSecret said before the patch."""

    synced_resource_version: str | None
    refresh_time: str | None


def force_sync_patch(value: str) -> dict[str, Any]:
    """The JSON merge patch that asks ESO to re-sync; ``value`` must differ each rotation."""
    return {"metadata": {"annotations": {FORCE_SYNC: value}}}


def before(external_secret: Mapping[str, Any]) -> Before:
    status = _map(external_secret.get("status"))
    return Before(_str(status.get("syncedResourceVersion")), _str(status.get("refreshTime")))


def sync_state(external_secret: Mapping[str, Any], recorded: Before, patched_at: datetime) -> Outcome:
    """Whether the sync asked for at ``patched_at`` has happened (see the module docstring)."""
    status = _map(external_secret.get("status"))
    ready = next((c for c in _list(status.get("conditions"))
                  if isinstance(c, dict) and c.get("type") == "Ready"), {})
    if ready.get("status") == "False" and ready.get("reason") == "SecretSyncedError" \
            and _after(_str(ready.get("lastTransitionTime")), patched_at):
        return Outcome("failed", f"ESO could not sync: {str(ready.get('message', ''))[:200]}")
    version = _str(status.get("syncedResourceVersion"))
    if version is None or version == recorded.synced_resource_version:
        return Outcome("waiting", "ESO has not synced since the patch")
    generation = _map(external_secret.get("metadata")).get("generation")
    if generation is not None and version.split("-", 1)[0] != str(generation):
        return Outcome("waiting", f"ESO synced generation {version.split('-', 1)[0]}, not {generation}")
    if ready.get("status") != "True" or ready.get("reason") != "SecretSynced":
        return Outcome("waiting", f"Ready is {ready.get('status')} ({ready.get('reason')})")
    if not _after(_str(status.get("refreshTime")), patched_at):
        return Outcome("waiting", "the last sync started before the patch")
    return Outcome("done", f"synced at {status.get('refreshTime')}")


def rollout_state(workload: Mapping[str, Any]) -> Outcome:
    """kubectl's ``rollout status`` verdict for a Deployment, StatefulSet or DaemonSet."""
    kind = workload.get("kind")
    meta, spec, status = (_map(workload.get(k)) for k in ("metadata", "spec", "status"))
    generation, observed = _int(meta.get("generation")), _int(status.get("observedGeneration"))
    if observed < generation or (kind == "StatefulSet" and observed == 0):
        return Outcome("waiting", "the controller has not seen the new template yet")
    if kind == "Deployment":
        return _deployment(spec, status)
    if kind == "StatefulSet":
        return _statefulset(spec, status)
    if kind == "DaemonSet":
        return _daemonset(status)
    return Outcome("failed", f"{kind!r} is not a workload Reloader restarts")


def reloader_watches(workload: Mapping[str, Any], secret: str,
                     secret_annotations: Mapping[str, str]) -> bool:
    """True when Reloader restarts ``workload`` on a data change of Secret ``secret``.

    Annotations come from the workload, or from its pod template when the workload has none
    of Reloader's keys (Reloader's rule). ``auto`` needs the pod spec to reference the Secret;
    ``secret.reloader.stakater.com/reload`` lists anchored regexes; ``search`` needs the
    Secret's ``match`` annotation and a reference. ``ignore`` on the Secret wins.
    """
    if secret_annotations.get("reloader.stakater.com/ignore") == "true":
        return False
    annotations = _reloader_annotations(workload)
    excluded = annotations.get("secrets.exclude.reloader.stakater.com/reload", "")
    if secret in (name.strip() for name in excluded.split(",")):
        return False
    listed = annotations.get("secret.reloader.stakater.com/reload", "")
    if any(_anchored(item.strip(), secret) for item in listed.split(",") if item.strip()):
        return True
    referenced = secret in _referenced_secrets(workload)
    auto = (annotations.get("reloader.stakater.com/auto") == "true"
            or annotations.get("secret.reloader.stakater.com/auto") == "true")
    if auto:
        return referenced
    if annotations.get("reloader.stakater.com/search") == "true":
        return referenced and secret_annotations.get("reloader.stakater.com/match") == "true"
    return False


def template_annotations(es: Mapping[str, Any]) -> dict[str, str]:
    """The annotations ESO gives the target Secret (``spec.target.template.metadata``):
    Reloader's ``match`` and ``ignore`` are read from there, since the rotator never reads
    Secrets."""
    spec = es.get("spec")
    target = spec.get("target") if isinstance(spec, Mapping) else None
    template = target.get("template") if isinstance(target, Mapping) else None
    meta = template.get("metadata") if isinstance(template, Mapping) else None
    annotations = meta.get("annotations") if isinstance(meta, Mapping) else None
    return {str(k): str(v) for k, v in annotations.items()} if isinstance(annotations, Mapping) else {}


def reloader_marker(workload: Mapping[str, Any], secret: str) -> str:
    """What Reloader last wrote into ``workload`` for Secret ``secret``, as one string.

    Reloader marks the pod template it changes: the env-vars strategy sets
    ``STAKATER_<NAME>_SECRET`` to the data's SHA1 on a container, the annotations strategy
    sets ``reloader.stakater.com/last-reloaded-from`` (JSON naming the Secret). Without
    ``get secrets`` the new SHA1 cannot be computed, so a reload for this Secret is seen as
    the marker changing while the generation rises (reference §5.4).
    """
    pod = _map(_map(workload.get("spec")).get("template"))
    env_name = _env_var_name(secret)
    values = sorted(
        str(_map(env).get("value", ""))
        for item in [*_list(_map(pod.get("spec")).get("containers")),
                     *_list(_map(pod.get("spec")).get("initContainers"))]
        for env in _list(_map(item).get("env")) if _map(env).get("name") == env_name)
    annotation = _str_map(_map(pod.get("metadata")).get("annotations")).get(_LAST_RELOADED_FROM, "")
    return "|".join([*values, annotation]) if values or annotation else ""


def _env_var_name(secret: str) -> str:
    """Reloader's ``ConvertToEnvVarName``: upper case, runs of other characters become ``_``."""
    out: list[str] = []
    last_valid = False
    for char in secret.upper():
        if char.isascii() and char.isalnum():
            out.append(char)
            last_valid = True
        else:
            if last_valid:
                out.append("_")
            last_valid = False
    return f"STAKATER_{''.join(out)}_SECRET"


_LAST_RELOADED_FROM = "reloader.stakater.com/last-reloaded-from"


# -- the rollout rules ---------------------------------------------------------------------

def _deployment(spec: Mapping[str, Any], status: Mapping[str, Any]) -> Outcome:
    for condition in _list(status.get("conditions")):
        if isinstance(condition, dict) and condition.get("type") == "Progressing" \
                and condition.get("reason") == "ProgressDeadlineExceeded":
            return Outcome("failed", "the rollout exceeded its progress deadline")
    wanted = _int(spec.get("replicas"), 1)
    updated, total = _int(status.get("updatedReplicas")), _int(status.get("replicas"))
    available = _int(status.get("availableReplicas"))
    if updated < wanted:
        return Outcome("waiting", f"{updated} of {wanted} replicas updated")
    if total > updated:
        return Outcome("waiting", f"{total - updated} old replicas pending termination")
    if available < updated:
        return Outcome("waiting", f"{available} of {updated} updated replicas available")
    return Outcome("done", "rolled out")


def _statefulset(spec: Mapping[str, Any], status: Mapping[str, Any]) -> Outcome:
    strategy = _map(spec.get("updateStrategy"))
    if strategy.get("type") == "OnDelete":
        return Outcome("failed", "updateStrategy OnDelete never rolls out by itself")
    wanted = _int(spec.get("replicas"), 1)
    if _int(status.get("readyReplicas")) < wanted:
        return Outcome("waiting", f"{_int(status.get('readyReplicas'))} of {wanted} pods ready")
    partition = _map(strategy.get("rollingUpdate")).get("partition")
    if partition is not None:
        needed = wanted - _int(partition)
        if _int(status.get("updatedReplicas")) < needed:
            return Outcome("waiting", f"{_int(status.get('updatedReplicas'))} of {needed} pods updated")
        return Outcome("done", "partitioned roll out complete")
    if status.get("updateRevision") != status.get("currentRevision"):
        return Outcome("waiting", "pods are still being updated to the new revision")
    return Outcome("done", "rolled out")


def _daemonset(status: Mapping[str, Any]) -> Outcome:
    desired = _int(status.get("desiredNumberScheduled"))
    updated, available = _int(status.get("updatedNumberScheduled")), _int(status.get("numberAvailable"))
    if updated < desired:
        return Outcome("waiting", f"{updated} of {desired} pods updated")
    if available < desired:
        return Outcome("waiting", f"{available} of {desired} updated pods available")
    return Outcome("done", "rolled out")


# -- Reloader's view of a workload -----------------------------------------------------------

_RELOADER_KEYS = ("reloader.stakater.com/auto", "secret.reloader.stakater.com/auto",
                  "secret.reloader.stakater.com/reload", "reloader.stakater.com/search")


def _reloader_annotations(workload: Mapping[str, Any]) -> dict[str, str]:
    own = _str_map(_map(workload.get("metadata")).get("annotations"))
    if any(key in own for key in _RELOADER_KEYS):
        return own
    template = _map(_map(workload.get("spec")).get("template"))
    return _str_map(_map(template.get("metadata")).get("annotations"))


def _referenced_secrets(workload: Mapping[str, Any]) -> set[str]:
    """Secrets a container uses as Reloader's ``auto`` mode finds them: env, envFrom, and
    secret or projected volumes only where a container (or init container) mounts them."""
    pod = _map(_map(_map(workload.get("spec")).get("template")).get("spec"))
    names: set[str] = set()
    mounted: set[str] = set()
    for item in [*_list(pod.get("containers")), *_list(pod.get("initContainers"))]:
        container = _map(item)
        for env in _list(container.get("env")):
            ref = _map(_map(_map(env).get("valueFrom")).get("secretKeyRef"))
            names.add(str(ref.get("name", "")))
        for source in _list(container.get("envFrom")):
            names.add(str(_map(_map(source).get("secretRef")).get("name", "")))
        mounted.update(str(_map(mount).get("name", "")) for mount in _list(container.get("volumeMounts")))
    for entry in _list(pod.get("volumes")):
        volume = _map(entry)
        if str(volume.get("name", "")) not in mounted:
            continue
        names.add(str(_map(volume.get("secret")).get("secretName", "")))
        for source in _list(_map(volume.get("projected")).get("sources")):
            names.add(str(_map(_map(source).get("secret")).get("name", "")))
    return names - {""}


def _anchored(pattern: str, name: str) -> bool:
    """Reloader's list items are anchored Go regexes (``^item$``), matched here in linear
    time (a workload's author must not be able to stall the rotator); one Go would refuse
    is compared as a plain name."""
    compiled = compile_go(f"^(?:{pattern})$")
    if compiled.problem is not None:
        return pattern == name
    return compiled.search(name)


# -- reading untrusted JSON --------------------------------------------------------------------

def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _str_map(value: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, Mapping) else {}


def _int(value: Any, default: int = 0) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _after(timestamp: str | None, moment: datetime) -> bool:
    """``timestamp`` (RFC 3339, ESO's second precision) is at or after ``moment``."""
    if timestamp is None:
        return False
    try:
        when = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return False
    return when + CLOCK_SKEW >= moment.replace(microsecond=0)
