"""Which ExternalSecrets and ClusterExternalSecrets to refresh after a Key Vault rotation.

:func:`match` takes the event's vault URL, the secret's name and tags, and the cluster's ESO
objects as plain dicts (``ExternalSecret``, ``ClusterExternalSecret``, ``SecretStore``,
``ClusterSecretStore`` in ``external-secrets.io/v1`` or ``v1beta1``; optionally ``Namespace``
objects for namespace selectors; ``*List`` wrappers are unwrapped), and returns one
:class:`Verdict` per ES and CES, sorted by namespace, kind and name. It does no I/O and never
raises on malformed objects: they get a verdict naming the field.

Actions, strongest first (an ES with several references takes its strongest finding):

``annotate``
    Some reference reads the secret's latest version through a store on this vault: set
    ``external-secrets.io/force-sync`` on it.
``annotate-parent``
    The same, but a ClusterExternalSecret controls this ES (ownerReference ``kind:
    ClusterExternalSecret, controller: true``, set by ``SetControllerReference`` in
    ``pkg/controllers/clusterexternalsecret/clusterexternalsecret_controller.go``). That
    controller rewrites its children's annotations on every reconcile, so annotate the CES
    (:attr:`Verdict.parent`), which has its own ``annotate`` verdict; from ESO 0.20 it copies
    ``external-secrets.io/force-sync`` to every child. (Before 0.20 it does not: there the CES's
    ``spec.externalSecretMetadata.annotations`` must change instead.)
``report``
    A human must look: pinned to a version (``remoteRef.version``); force-sync does nothing
    here (``refreshPolicy: CreatedOnce``, or ``refreshInterval`` 0 under the default
    ``Periodic`` policy: ``shouldRefresh``/``shouldRefreshPeriodic`` in
    ``pkg/controllers/externalsecret/externalsecret_controller.go`` return false before looking
    at annotations once the ES has synced); a ``find`` regexp not evaluated here; a store that
    cannot be read; a CES whose SecretStore's namespaces are unknown.
``skip``
    Another vault, no reference, not a secret (``cert/`` or ``key/``), store missing or not
    azurekv, namespace refused by a ClusterSecretStore, a generator, or malformed.

A CES is judged on its ``spec.externalSecretSpec``. ClusterSecretStores need no namespace; a
``SecretStore`` reference resolves in each namespace the CES targets, taken from
``spec.namespaces``, ``status.provisionedNamespaces``, its child ESs among the objects, and
given Namespaces its ``namespaceSelector(s)`` select.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Literal

from rotation.propagation.candidates import could_read
from rotation.propagation.kube import (
    CES_KIND,
    CSS_KIND,
    ES_KIND,
    GROUP,
    SS_KIND,
    SUPPORTED_VERSIONS,
    JsonMap,
    Malformed,
    as_map,
    group_version,
    opt_list,
    opt_map,
    opt_str,
    quote,
    str_map,
)
from rotation.propagation.refs import ANNOTATE, Finding, Wanted, judge_spec
from rotation.propagation.stores import (
    Store,
    StoreIndex,
    normalise_vault_url,
    read_store,
    selector_matches,
)

Action = Literal["annotate", "annotate-parent", "report", "skip"]
Kind = Literal["ExternalSecret", "ClusterExternalSecret"]

_RANK: dict[str, int] = {"annotate": 3, "annotate-parent": 3, "report": 2, "skip": 1}
_DEFAULT_REFRESH_INTERVAL = "1h0m0s"  # the CRD's default, absent from hand-written YAML
_DURATION_UNITS_NS = {"ns": 1, "us": 10**3, "\u00b5s": 10**3, "\u03bcs": 10**3, "ms": 10**6,
                      "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}
_DURATION_PART = re.compile(r"([0-9]*)(?:\.([0-9]*))?([^0-9.]*)")


@dataclass(frozen=True, slots=True)
class Verdict:
    """What to do with one ES or CES after the rotation, and why.

    ``reason`` starts with the action (``"skip: its store ClusterSecretStore/kv-other points at
    another vault ('https://kv-other.vault.azure.net')"``). ``store`` is the store the deciding
    reference resolved to (``namespace/SecretStore/name`` or ``ClusterSecretStore/name``; ``""``
    when none). ``parent`` is the owning ClusterExternalSecret of an ES, if any.
    """

    namespace: str  # "" for a ClusterExternalSecret
    kind: Kind
    name: str
    action: Action
    reason: str
    target_secret: str  # the Kubernetes Secret it writes: spec.target.name, else the ES name
    store: str = ""
    parent: str | None = None


def match(vault_url: str, secret: str, tags: Mapping[str, str],
          objects: Iterable[Mapping[str, object]], *, candidates_only: bool = False) -> list[Verdict]:
    """One verdict per ExternalSecret and ClusterExternalSecret in ``objects``.

    ``vault_url`` is the rotated secret's vault (raises :class:`ValueError` if it is not an
    http(s) URL: it is the caller's own value). Objects of other kinds are ignored; the result
    does not depend on their order. With ``candidates_only`` (the rotation's path), objects
    that certainly do not name the secret (:mod:`~rotation.propagation.candidates`) are not
    judged, and only the verdicts the rotation acts on (all but ``skip``) are returned.
    """
    wanted = Wanted(normalise_vault_url(vault_url), secret, dict(tags))
    externals: list[tuple[str, JsonMap]] = []
    stores: list[Store] = []
    namespace_labels: dict[str, dict[str, str]] = {}
    for obj in _unwrap(objects):
        kind = obj.get("kind")
        gv = group_version(obj)
        meta = as_map(obj.get("metadata")) or {}
        name, namespace = meta.get("name"), meta.get("namespace")
        if kind == "Namespace" and gv == ("", "v1") and isinstance(name, str):
            try:
                namespace_labels[name] = str_map(meta, "labels", "metadata")
            except Malformed:
                continue
        elif kind in (ES_KIND, CES_KIND) and (gv is None or gv[0] == GROUP):
            externals.append((str(kind), obj))
        elif kind in (SS_KIND, CSS_KIND) and gv is not None and gv[0] == GROUP and isinstance(name, str):
            stores.append(read_store(obj, str(kind), namespace if isinstance(namespace, str) else "", name))
    index = StoreIndex(stores, namespace_labels)
    children: dict[str, set[str]] = defaultdict(set)
    for kind, obj in externals:
        meta = as_map(obj.get("metadata")) or {}
        parent, namespace = _parent(meta), meta.get("namespace")
        if kind == ES_KIND and parent is not None and isinstance(namespace, str):
            children[parent].add(namespace)
    best: dict[tuple[str, str, str], Verdict] = {}
    for kind, obj in externals:
        if candidates_only and not could_read(obj, kind, wanted):
            continue
        verdict = _judge(kind, obj, wanted, index, children)
        key = (verdict.namespace, verdict.kind, verdict.name)
        if key not in best or _order(verdict) > _order(best[key]):
            best[key] = verdict
    return [best[key] for key in sorted(best) if not (candidates_only and best[key].action == "skip")]


def _order(verdict: Verdict) -> tuple[int, str, str, str, str]:
    """A total order for duplicates of one object (e.g. listed as v1 and v1beta1)."""
    return (_RANK[verdict.action], verdict.reason, verdict.target_secret, verdict.store,
            verdict.parent or "")


def _unwrap(objects: Iterable[object]) -> Iterator[JsonMap]:
    """Each object, with ``List`` objects (``kubectl get -o yaml``, API list bodies) unwrapped."""
    for obj in objects:
        found = as_map(obj)
        if found is None:
            continue
        kind, items = found.get("kind"), found.get("items")
        if not (isinstance(kind, str) and kind.endswith("List") and isinstance(items, list)):
            yield found
            continue
        for item in items:
            entry = as_map(item)
            if entry is not None and "kind" not in entry and kind != "List":
                entry = {**entry, "kind": kind.removesuffix("List"), "apiVersion": found.get("apiVersion")}
            if entry is not None:
                yield entry


def _judge(kind: str, obj: JsonMap, wanted: Wanted, index: StoreIndex,
           children: Mapping[str, set[str]]) -> Verdict:
    meta = as_map(obj.get("metadata")) or {}
    name, namespace = meta.get("name"), meta.get("namespace")
    is_ces = kind == CES_KIND
    verdict_kind: Kind = CES_KIND if is_ces else ES_KIND
    ident = (
        "" if is_ces or not isinstance(namespace, str) else namespace,
        name if isinstance(name, str) else "",
    )

    def skip(reason: str) -> Verdict:
        return Verdict(ident[0], verdict_kind, ident[1], "skip", f"skip: {reason}", "")

    gv = group_version(obj)
    if obj.get("apiVersion") is None:
        return skip("malformed: apiVersion is missing")
    if gv is None or gv[1] not in SUPPORTED_VERSIONS:
        return skip(f"apiVersion {quote(obj.get('apiVersion'))} is not supported "
                    f"({GROUP}/v1 or {GROUP}/v1beta1)")
    if not ident[1]:
        return skip("malformed: metadata.name is missing")
    if namespace is not None and not isinstance(namespace, str):
        return skip("malformed: metadata.namespace is not a string")
    try:
        spec = opt_map(obj, "spec", "")
        if spec is None:
            return skip("malformed: spec is missing")
        if is_ces:
            return _judge_ces(obj, spec, ident[1], wanted=wanted, index=index,
                              child_namespaces=children.get(ident[1], set()))
        es_namespace = namespace if isinstance(namespace, str) else ""
        target = opt_str(opt_map(spec, "target", "spec") or {}, "name", "spec.target") or ident[1]
        best = _strongest(judge_spec(spec, "spec", es_namespace, wanted, index))
        return _verdict(ES_KIND, es_namespace, ident[1], best=best, spec=spec, path="spec",
                        target=target, parent=_parent(meta))
    except Malformed as exc:
        return skip(f"malformed: {exc}")


def _judge_ces(obj: JsonMap, spec: JsonMap, name: str, *, wanted: Wanted, index: StoreIndex,
               child_namespaces: set[str]) -> Verdict:
    es_spec = opt_map(spec, "externalSecretSpec", "spec")
    if es_spec is None:
        raise Malformed("spec.externalSecretSpec", "is missing")
    path = "spec.externalSecretSpec"
    child_name = opt_str(spec, "externalSecretName", "spec") or name
    target = opt_str(opt_map(es_spec, "target", path) or {}, "name", f"{path}.target") or child_name
    findings: list[Finding] = []
    namespaces: list[str | None] = [*sorted(_ces_namespaces(obj, spec, index, child_namespaces))]
    for namespace in namespaces or [None]:
        findings.extend(judge_spec(es_spec, path, namespace, wanted, index))
    return _verdict(CES_KIND, "", name, best=_strongest(findings), spec=es_spec, path=path,
                    target=target, parent=None)


def _ces_namespaces(obj: JsonMap, spec: JsonMap, index: StoreIndex, children: set[str]) -> set[str]:
    """Namespaces the CES writes to, as far as the objects tell (ESO's ``GetTargetNamespaces``)."""
    found = set(children)
    status = opt_map(obj, "status", "") or {}
    for path, owner, key in (("spec", spec, "namespaces"), ("status", status, "provisionedNamespaces")):
        found.update(n for n in opt_list(owner, key, path) if isinstance(n, str) and n)
    selectors = [opt_map(spec, "namespaceSelector", "spec"), *opt_list(spec, "namespaceSelectors", "spec")]
    for selector in selectors:
        selector_map = as_map(selector)
        if selector_map is None:
            continue
        for namespace in index.namespaces():
            labels = index.namespace_labels(namespace)
            if labels is not None and selector_matches(selector_map, labels):
                found.add(namespace)
    return found


def _strongest(findings: list[Finding]) -> Finding:
    """The strongest finding; the first in spec order among equals (``max`` keeps the first)."""
    return max(findings, key=lambda f: f.strength)


def _verdict(kind: Kind, namespace: str, name: str, *, best: Finding, spec: JsonMap, path: str,
             target: str, parent: str | None) -> Verdict:
    action: Action = best.action
    reason = f"{best.action}: {best.reason}"
    if best.strength == ANNOTATE:
        blocked = _force_sync_ignored(spec, path)
        if blocked is not None:
            action, reason = "report", f"report: {blocked}; {best.reason}"
        elif parent is not None:
            action = "annotate-parent"
            reason = (f"annotate-parent: ClusterExternalSecret {quote(parent)} controls it and "
                      f"rewrites its annotations, so annotate the CES; {best.reason}")
    return Verdict(namespace, kind, name, action, reason, target, best.store, parent)


def _force_sync_ignored(spec: JsonMap, path: str) -> str | None:
    """Why an annotation change would not make ESO sync this spec, or None if it would.

    ``OnChange`` always syncs on a metadata change; ``CreatedOnce`` never does once synced;
    ``Periodic`` -- the default, and ESO's fallback for any other value -- does unless
    ``refreshInterval`` is zero or negative.
    """
    policy = spec.get("refreshPolicy")
    if policy == "CreatedOnce":
        return f"force-sync does nothing here: {path}.refreshPolicy is CreatedOnce"
    if policy == "OnChange":
        return None
    raw = spec.get("refreshInterval")
    raw = _DEFAULT_REFRESH_INTERVAL if raw is None else raw
    if not isinstance(raw, str):
        return f"malformed: {path}.refreshInterval {quote(raw)} is not a duration string"
    try:
        interval = parse_go_duration(raw)
    except ValueError:
        return f"malformed: {path}.refreshInterval {quote(raw)} is not a Go duration"
    if interval <= 0:
        return (f"force-sync does nothing here: {path}.refreshInterval is {quote(raw)} under the "
                f"{'Periodic' if policy == 'Periodic' else 'default Periodic'} refreshPolicy, so "
                "ESO ignores annotation changes once it has synced (refreshPolicy OnChange would not)")
    return None


def parse_go_duration(text: str) -> int:
    """Nanoseconds in a Go duration string (``time.ParseDuration``, which ``metav1.Duration``
    uses): ``"0"``, or signed decimal numbers each with a unit, e.g. ``"1h30m"``, ``"-1.5s"``.

    Raises :class:`ValueError` for anything else, or a value outside int64.
    """
    rest, negative = text, False
    if rest[:1] in ("+", "-"):
        negative, rest = rest[0] == "-", rest[1:]
    if rest == "0":
        return 0
    if not rest:
        raise ValueError(f"invalid duration {text!r}")
    total = 0
    while rest:
        part = _DURATION_PART.match(rest)
        if part is None or not (part.group(1) or part.group(2)) or part.group(3) not in _DURATION_UNITS_NS:
            raise ValueError(f"invalid duration {text!r}")
        whole, fraction, unit = part.group(1) or "0", part.group(2) or "", part.group(3)
        scale = _DURATION_UNITS_NS[unit]
        total += int(whole) * scale + (int(fraction) * scale // 10 ** len(fraction) if fraction else 0)
        rest = rest[part.end():]
    if total > 2**63 - (0 if negative else 1):
        raise ValueError(f"duration {text!r} is out of range")
    return -total if negative else total


def _parent(meta: JsonMap) -> str | None:
    """The ClusterExternalSecret that controls an ES (its controller ownerReference), if any."""
    references = meta.get("ownerReferences")
    for item in references if isinstance(references, list) else []:
        owner = as_map(item)
        if owner is None or owner.get("kind") != CES_KIND or owner.get("controller") is not True:
            continue
        gv = group_version(owner)
        name = owner.get("name")
        if gv is not None and gv[0] == GROUP and isinstance(name, str) and name:
            return name
    return None
