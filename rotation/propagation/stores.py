"""SecretStores and ClusterSecretStores: which vault each one reads, and who may use it.

A store names its vault in exactly one place, ``spec.provider.azurekv.vaultUrl``. An
ExternalSecret's store reference resolves as ESO's client manager resolves it
(``pkg/controllers/secretstore/client_manager.go`` ``getStore``, ESO v2.9.0): kind
``ClusterSecretStore`` is the cluster-wide store of that name; any other kind, including none,
is the ``SecretStore`` of that name **in the ExternalSecret's own namespace**. So two
namespaces can hold stores of the same name pointing at different vaults.

A ClusterSecretStore's ``spec.conditions`` restrict the namespaces that may use it
(``shouldProcessSecret`` in the same file): allowed when any condition's
``namespaceSelector``, ``namespaces`` or ``namespaceRegexes`` admits the namespace. Names and
regexes are decided here; a ``namespaceSelector`` needs the namespace's labels, which come from
``Namespace`` objects passed in with the rest. Without them the answer is "unknown", and the
caller annotates anyway (a refused ES just fails its sync again), saying so in the reason.

Not honoured: ``spec.controller`` (which ESO instance serves a store; any class is assumed to
have a running controller) and the store's Ready condition (``--enable-floodgate``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from rotation.propagation.goregexp import compile_go
from rotation.propagation.kube import (
    CSS_KIND,
    GROUP,
    NAMESPACE_NAME_LABEL,
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

_DEFAULT_PORTS = {"https": 443, "http": 80}


def normalise_vault_url(url: str) -> str:
    """``scheme://host[:port][/path]`` with scheme and host lower-cased, the default port and a
    trailing slash dropped, so two spellings of one vault compare equal.

    Only compared, never connected to, so :func:`urllib.parse.urlsplit` is enough here (the
    rotator's own vault URLs are checked with the HTTP stack's parser in :mod:`rotation.urls`).
    Raises :class:`ValueError` for anything without an ``http(s)`` scheme and a host.
    """
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").rstrip(".")
    if scheme not in _DEFAULT_PORTS or not host:
        raise ValueError(f"{quote(url)} is not an https:// URL with a host")
    port = parts.port  # raises ValueError for a port that is not a number in range
    netloc = f"[{host}]" if ":" in host else host
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        netloc = f"{netloc}:{port}"
    return f"{scheme}://{netloc}{parts.path.rstrip('/')}"


@dataclass(frozen=True, slots=True, order=True)
class StoreKey:
    """Which store a reference names, after ESO's defaulting."""

    kind: str  # SecretStore or ClusterSecretStore
    namespace: str  # "" for a ClusterSecretStore
    name: str

    def __str__(self) -> str:
        """``namespace/SecretStore/name`` or ``ClusterSecretStore/name``."""
        if self.kind == CSS_KIND:
            return f"{CSS_KIND}/{self.name}"
        return f"{self.namespace}/{self.kind}/{self.name}"


@dataclass(frozen=True, slots=True)
class Condition:
    """One entry of a ClusterSecretStore's ``spec.conditions``."""

    selector: JsonMap | None
    namespaces: tuple[str, ...]
    regexes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Store:
    """What a store says about its vault; exactly one of ``vault``, ``provider``, ``problem``."""

    key: StoreKey
    vault: str | None = None  # normalised azurekv vaultUrl
    provider: str | None = None  # the provider it uses instead of azurekv
    problem: str | None = None  # why it cannot be read
    conditions: tuple[Condition, ...] = ()


def read_store(obj: JsonMap, kind: str, namespace: str, name: str) -> Store:
    """The store ``obj`` describes; a :class:`Store` with ``problem`` set when it is malformed."""
    key = StoreKey(kind, namespace if kind == SS_KIND else "", name)
    gv = group_version(obj)
    if gv is None or gv[0] != GROUP or gv[1] not in SUPPORTED_VERSIONS:
        return Store(key, problem=f"apiVersion {quote(obj.get('apiVersion'))} is not "
                                  f"{GROUP}/v1 or /v1beta1")
    try:
        spec = opt_map(obj, "spec", "") or {}
        conditions = _conditions(spec) if kind == CSS_KIND else ()
        provider = opt_map(spec, "provider", "spec")
        if not provider:
            return Store(key, problem="spec.provider is missing")
        azurekv = opt_map(provider, "azurekv", "spec.provider")
        if azurekv is None:
            return Store(key, provider=",".join(sorted(str(k) for k in provider)))
        url = opt_str(azurekv, "vaultUrl", "spec.provider.azurekv")
        if not url:
            return Store(key, problem="spec.provider.azurekv.vaultUrl is missing")
        try:
            vault = normalise_vault_url(url)
        except ValueError:
            return Store(key, problem=f"spec.provider.azurekv.vaultUrl {quote(url)} is not a URL")
        return Store(key, vault=vault, conditions=conditions)
    except Malformed as exc:
        return Store(key, problem=str(exc))


def _conditions(spec: JsonMap) -> tuple[Condition, ...]:
    found: list[Condition] = []
    for index, item in enumerate(opt_list(spec, "conditions", "spec")):
        path = f"spec.conditions[{index}]"
        condition = as_map(item)
        if condition is None:
            raise Malformed(path, "is not an object")
        namespaces = opt_list(condition, "namespaces", path)
        regexes = opt_list(condition, "namespaceRegexes", path)
        if not all(isinstance(n, str) for n in [*namespaces, *regexes]):
            raise Malformed(path, "lists a namespace or regex that is not a string")
        found.append(Condition(opt_map(condition, "namespaceSelector", path),
                               tuple(str(n) for n in namespaces), tuple(str(r) for r in regexes)))
    return tuple(found)


def selector_matches(selector: JsonMap, labels: Mapping[str, str]) -> bool | None:
    """A ``metav1.LabelSelector`` against ``labels``; None when the selector is invalid.

    An empty selector matches everything, as ``LabelSelectorAsSelector`` makes it.
    """
    try:
        wanted = str_map(selector, "matchLabels", "selector")
        expressions = opt_list(selector, "matchExpressions", "selector")
    except Malformed:
        return None
    if any(labels.get(k) != v for k, v in wanted.items()):
        return False
    for item in expressions:
        expression = as_map(item)
        if expression is None:
            return None
        key, operator, values = expression.get("key"), expression.get("operator"), expression.get("values")
        values = values if values is not None else []
        if not isinstance(key, str) or not isinstance(values, list):
            return None
        if operator in ("In", "NotIn"):
            if not values:
                return None
            inside = key in labels and labels[key] in values
            if inside != (operator == "In"):
                return False
        elif operator in ("Exists", "DoesNotExist"):
            if values:
                return None
            if (key in labels) != (operator == "Exists"):
                return False
        else:
            return None
    return True


@dataclass(frozen=True, slots=True)
class Access:
    """Whether a namespace may use a store: ``allowed`` True/False, or None with ``why`` unknown."""

    allowed: bool | None
    why: str = ""


class StoreIndex:
    """Every store and Namespace among the given objects, looked up the way ESO looks them up."""

    def __init__(self, stores: Iterable[Store], namespace_labels: Mapping[str, Mapping[str, str]]) -> None:
        by_key: dict[StoreKey, list[Store]] = defaultdict(list)
        for store in stores:
            if store not in by_key[store.key]:  # the same object listed as v1 and v1beta1 is fine
                by_key[store.key].append(store)
        self._stores = {key: found[0] if len(found) == 1 else
                        Store(key, problem=f"is given {len(found)} times with different specs")
                        for key, found in by_key.items()}
        self._labels = {name: {**labels, NAMESPACE_NAME_LABEL: name}
                        for name, labels in namespace_labels.items()}

    def get(self, key: StoreKey) -> Store | None:
        """The store ``key`` names, or None if it is not among the objects."""
        return self._stores.get(key)

    def namespace_labels(self, namespace: str) -> Mapping[str, str] | None:
        """The labels of a Namespace given among the objects; None if it was not given."""
        return self._labels.get(namespace)

    def namespaces(self) -> list[str]:
        """Names of the Namespaces given among the objects."""
        return sorted(self._labels)

    def access(self, store: Store, namespace: str | None) -> Access:
        """Whether ``namespace`` may use ``store`` (ESO's ``shouldProcessSecret``)."""
        if store.key.kind != CSS_KIND or not store.conditions:
            return Access(True)
        if not namespace:
            return Access(None, "the namespace is not known")
        unknown: list[str] = []
        for index, condition in enumerate(store.conditions):
            if namespace in condition.namespaces:
                return Access(True)
            if condition.selector is not None:
                labels = self.namespace_labels(namespace)
                verdict = selector_matches(condition.selector, labels) if labels is not None else None
                if verdict:
                    return Access(True)
                if verdict is None:
                    unknown.append(f"spec.conditions[{index}].namespaceSelector needs Namespace "
                                   f"{quote(namespace)}'s labels" if labels is None else
                                   f"spec.conditions[{index}].namespaceSelector is invalid")
            for regex in condition.regexes:
                compiled = compile_go(regex)
                if compiled.search(namespace):
                    return Access(True)
                if compiled.problem:
                    unknown.append(f"spec.conditions[{index}].namespaceRegexes {quote(regex)}: "
                                   f"{compiled.problem}")
        if unknown:
            return Access(None, "; ".join(unknown))
        return Access(False)
