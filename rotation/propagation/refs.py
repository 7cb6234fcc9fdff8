"""One reference in an ExternalSecret spec, judged against the rotated Key Vault secret.

An ES spec (or a ClusterExternalSecret's ``spec.externalSecretSpec``) reaches Key Vault
through its items, each with its own effective store (ESO's ``GetProviderSecretData`` in
``pkg/controllers/externalsecret/externalsecret_controller_secret.go``, v2.9.0):

* ``data[i].remoteRef`` -- store ``data[i].sourceRef.storeRef`` when ``sourceRef`` is set (ESO
  then uses that storeRef even if empty), else ``spec.secretStoreRef``;
* ``dataFrom[j].find``, else ``dataFrom[j].extract``, else ``dataFrom[j].sourceRef.generatorRef``
  (that order) -- store ``dataFrom[j].sourceRef.storeRef`` when set, else ``spec.secretStoreRef``.

azurekv reads a key as ``getObjType`` splits it (``providers/v1/azure/keyvault/keyvault.go``):
no ``/`` means type ``secret``; otherwise the part before the first ``/`` is the type
(``secret``, ``cert`` or ``key``, case-sensitive) and the second part the name. Key Vault
names compare case-insensitively. ``remoteRef.version`` pins a version; empty means latest.
``find`` keeps an enabled secret carrying all ``find.tags`` with equal values whose name the
Go regexp ``find.name.regexp`` matches anywhere (:mod:`rotation.propagation.goregexp`); an
empty regexp or no tags drop that test; ``find.path`` is ignored by azurekv. The rotated
secret is assumed enabled (a new version was just written), its name is matched as given
(Key Vault lists names in the case they were created with), and its tags are those passed in.

Each item yields one :class:`Finding`; the ES's verdict is the strongest of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from rotation.propagation.goregexp import compile_go
from rotation.propagation.kube import (
    CSS_KIND,
    SS_KIND,
    JsonMap,
    Malformed,
    as_map,
    opt_list,
    opt_map,
    opt_str,
    quote,
    str_map,
)
from rotation.propagation.stores import StoreIndex, StoreKey

Action = Literal["annotate", "report", "skip"]

# How strongly a finding speaks for its ES: the strongest finding is the verdict; ties go to
# the first in the spec (data before dataFrom). Reports outrank skips: a human must look.
ANNOTATE = 100
PINNED = 70
REGEXP = 65
STORE_UNREADABLE = 60
NAMESPACE_UNKNOWN = 55
NOT_A_SECRET = 40
DENIED = 35
UNKNOWN_TYPE = 32
NO_REFERENCE = 30
OTHER_VAULT = 20
NOT_AZUREKV = 18
NO_STORE = 15
GENERATOR = 12
MALFORMED = 10

_OBJECT_TYPES = {"secret": "secret", "cert": "certificate", "key": "key"}


@dataclass(frozen=True, slots=True)
class Wanted:
    """The rotated secret: its vault (normalised), name and tags."""

    vault: str
    name: str
    tags: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Finding:
    """What one item says: an action, its strength, why (without the action prefix), and the
    store it resolved to (``""`` when none was resolved)."""

    action: Action
    strength: int
    reason: str
    store: str = ""


@dataclass(frozen=True, slots=True)
class _Ref:
    """An item's key or find judged on its own, before its store is known."""

    action: Action
    strength: int
    reason: str
    reads: bool  # it names the rotated secret (pinned or not); the store decides the rest


@dataclass(frozen=True, slots=True)
class _Store:
    """An item's store: ``in_vault``, or a finding to give instead (``definite`` or not)."""

    label: str
    in_vault: bool = False
    note: str = ""
    strength: int = 0
    reason: str = ""
    definite: bool = True  # False: the vault is unknown, so only a matching reference reports it


def judge_spec(spec: JsonMap, path: str, namespace: str | None, wanted: Wanted,
               stores: StoreIndex) -> list[Finding]:
    """One finding per ``data``/``dataFrom`` item of ``spec`` (found at ``path``).

    ``namespace`` is where SecretStores resolve: the ES's namespace, or one a CES targets;
    None when a CES's target namespaces are unknown.
    """
    findings: list[Finding] = []
    for field in ("data", "dataFrom"):
        try:
            items = opt_list(spec, field, path)
        except Malformed as exc:
            findings.append(Finding("skip", MALFORMED, f"malformed: {exc}"))
            continue
        for index, item in enumerate(items):
            try:
                findings.append(_judge_item(spec, path, field, index, item, namespace=namespace,
                                            wanted=wanted, stores=stores))
            except Malformed as exc:
                findings.append(Finding("skip", MALFORMED, f"malformed: {exc}"))
    if not findings:
        findings.append(Finding("skip", MALFORMED, f"malformed: {path} has neither data nor dataFrom"))
    return findings


def _judge_item(spec: JsonMap, path: str, field: str, index: int, item: object, *,
                namespace: str | None, wanted: Wanted, stores: StoreIndex) -> Finding:
    item_path = f"{path}.{field}[{index}]"
    entry = as_map(item)
    if entry is None:
        raise Malformed(item_path, "is not an object")
    source = opt_map(entry, "sourceRef", item_path)
    source_path = f"{item_path}.sourceRef"
    store_ref = opt_map(source, "storeRef", source_path) if source is not None else None
    generator = opt_map(source, "generatorRef", source_path) if source is not None else None
    if field == "data":
        if source is not None and store_ref is None and generator is not None:
            return Finding("skip", GENERATOR, f"{source_path}.generatorRef is a generator, not Key Vault")
        remote = opt_map(entry, "remoteRef", item_path)
        if remote is None:
            raise Malformed(f"{item_path}.remoteRef", "is missing")
        ref = _judge_key(remote, f"{item_path}.remoteRef", wanted)
        if source is not None:  # ESO takes data[].sourceRef.storeRef even when it is empty
            store_ref = store_ref or {}
    else:
        find = opt_map(entry, "find", item_path)
        extract = opt_map(entry, "extract", item_path)
        if find is not None:
            ref = _judge_find(find, f"{item_path}.find", wanted)
        elif extract is not None:
            ref = _judge_key(extract, f"{item_path}.extract", wanted)
        elif generator is not None:
            return Finding("skip", GENERATOR, f"{source_path}.generatorRef is a generator, not Key Vault")
        else:
            raise Malformed(item_path, "has none of find, extract or sourceRef.generatorRef")
    ref_path = f"{source_path}.storeRef"
    if store_ref is None:
        store_ref, ref_path = opt_map(spec, "secretStoreRef", path), f"{path}.secretStoreRef"
    return _combine(_resolve_store(store_ref, ref_path, namespace, wanted, stores), ref)


def _judge_key(remote: JsonMap, path: str, wanted: Wanted) -> _Ref:
    key = opt_str(remote, "key", path)
    if key is None:
        raise Malformed(f"{path}.key", "is missing")
    parts = key.split("/")
    object_type, name = ("secret", key) if len(parts) == 1 else (parts[0], parts[1])
    where = f"{path}.key {quote(key)}"
    if name.lower() != wanted.name.lower():
        return _Ref("skip", NO_REFERENCE, f"no reference to {quote(wanted.name)}: {where} names "
                                          "another object", reads=False)
    if object_type not in _OBJECT_TYPES:
        return _Ref("skip", UNKNOWN_TYPE, f"{where} has object type {quote(object_type)}, which "
                                          "azurekv does not know (secret, cert, key)", reads=False)
    if object_type != "secret":
        return _Ref("skip", NOT_A_SECRET, f"not a secret: {where} reads the "
                                          f"{_OBJECT_TYPES[object_type]} of that name", reads=False)
    version = opt_str(remote, "version", path)
    if version:
        return _Ref("report", PINNED, f"pinned to a version: {path}.version {quote(version)} fixes "
                                      f"what {where} reads", reads=True)
    fetch = opt_str(remote, "metadataPolicy", path) == "Fetch"
    return _Ref("annotate", ANNOTATE, f"{where} reads {'its tags and attributes' if fetch else 'it'}",
                reads=True)


def _judge_find(find: JsonMap, path: str, wanted: Wanted) -> _Ref:
    tags = str_map(find, "tags", path)
    name = opt_map(find, "name", path)
    regexp = opt_str(name, "regexp", f"{path}.name") if name is not None else None
    differing = sorted(k for k, v in tags.items() if wanted.tags.get(k) != v)
    if differing:
        shown = ", ".join(quote(k, 40) for k in differing[:3]) + (", …" if len(differing) > 3 else "")
        return _Ref("skip", NO_REFERENCE, f"no reference to {quote(wanted.name)}: {path}.tags differ "
                                          f"from its tags on {shown}", reads=False)
    if regexp:
        compiled = compile_go(regexp)
        if compiled.problem is not None:
            why = (f"is not a valid Go regexp ({compiled.problem}): Go refuses it, so ESO's find selects "
                   "nothing" if compiled.go_rejects else f"cannot be evaluated here ({compiled.problem})")
            return _Ref("report", REGEXP, f"{path}.name.regexp {quote(regexp)} {why}", reads=False)
        if not compiled.search(wanted.name):
            return _Ref("skip", NO_REFERENCE, f"no reference to {quote(wanted.name)}: {path}.name.regexp "
                                              f"{quote(regexp)} does not match it", reads=False)
    if not tags and not regexp:
        return _Ref("annotate", ANNOTATE, f"{path} has neither name.regexp nor tags, so it reads every "
                                          "secret in the vault", reads=True)
    tests = ([f"name.regexp {quote(regexp)}"] if regexp else []) + ([f"{len(tags)} tag(s)"] if tags else [])
    return _Ref("annotate", ANNOTATE, f"{path} selects it by {' and '.join(tests)}", reads=True)


def _resolve_store(store_ref: JsonMap | None, path: str, namespace: str | None, wanted: Wanted,
                   stores: StoreIndex) -> _Store:
    if store_ref is None:
        return _Store("", strength=NO_STORE, reason=f"it names no store ({path} is missing)")
    kind = opt_str(store_ref, "kind", path) or SS_KIND
    name = opt_str(store_ref, "name", path)
    if kind not in (SS_KIND, CSS_KIND):
        return _Store("", strength=MALFORMED, reason=f"malformed: {path}.kind {quote(kind)} is neither "
                                                     f"{SS_KIND} nor {CSS_KIND}")
    if not name:
        return _Store("", strength=MALFORMED, reason=f"malformed: {path}.name is missing")
    if kind == SS_KIND and namespace is None:
        return _Store("", strength=NAMESPACE_UNKNOWN, definite=False,
                      reason=f"{SS_KIND} {quote(name)} resolves in each target namespace and none is "
                             "known (spec.namespaces, status.provisionedNamespaces, child ExternalSecrets)")
    key = StoreKey(kind, (namespace or "") if kind == SS_KIND else "", name)
    store = stores.get(key)
    if store is None:
        return _Store(str(key), strength=NO_STORE, reason=f"its store {key} is not among the given objects")
    if store.problem is not None:
        return _Store(str(key), strength=STORE_UNREADABLE, definite=False,
                      reason=f"its store {key} cannot be read: {store.problem}")
    if store.vault is None:
        return _Store(str(key), strength=NOT_AZUREKV,
                      reason=f"its store {key} is not an Azure Key Vault store (provider "
                             f"{quote(store.provider)})")
    if store.vault != wanted.vault:
        return _Store(str(key), strength=OTHER_VAULT, reason=f"its store {key} points at another "
                                                             f"vault ({quote(store.vault)})")
    access = stores.access(store, namespace)
    if access.allowed is False:
        return _Store(str(key), strength=DENIED, reason=f"{key} does not allow namespace "
                                                        f"{quote(namespace)} (spec.conditions)")
    note = "" if access.allowed else f" ({key} spec.conditions not evaluated: {access.why}; assumed allowed)"
    return _Store(str(key), in_vault=True, note=note)


def _combine(store: _Store, ref: _Ref) -> Finding:
    if store.in_vault:
        through = f" through {store.label}{store.note}" if ref.reads else ""
        return Finding(ref.action, ref.strength, ref.reason + through, store.label)
    if not store.definite and (ref.reads or ref.action == "report"):
        return Finding("report", store.strength, f"{store.reason}, and {ref.reason}", store.label)
    if not store.definite:
        return Finding(ref.action, ref.strength, ref.reason, store.label)
    action: Action = "skip"
    return Finding(action, store.strength, store.reason, store.label)
