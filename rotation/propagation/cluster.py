"""A Kubernetes cluster as propagation sees it, through the official ``kubernetes`` client.

The only module that imports the client (``tests/unit/test_architecture.py``), so everything
the rotator does to a cluster is in this file and uses exactly the verbs
``infra/k8s/rbac.yaml`` grants:

- read the ESO objects matching needs (:meth:`Cluster.eso_objects`: ``list`` on
  ExternalSecrets, ClusterExternalSecrets, SecretStores and ClusterSecretStores; Namespaces,
  for ClusterSecretStore conditions, when the role allows it and skipped when not);
- read one ExternalSecret or ClusterExternalSecret (:meth:`Cluster.get`) and ask ESO to
  re-sync it (:meth:`Cluster.force_sync`, a ``patch`` of one annotation);
- read the Deployments, StatefulSets and DaemonSets of a namespace (:meth:`Cluster.workloads`)
  whose rollouts :mod:`rotation.propagation.confirm` judges.

Never a Secret: the rotator learns whether ESO synced from the ExternalSecret's status.
``external-secrets.io/v1`` is read first; a cluster that serves only ``v1beta1`` is read at
that version.

Errors. Every failure is one :class:`ClusterError` naming the call (verb, resource,
namespace/name), the cluster and the HTTP status (``status``; ``None`` when no answer came:
refused, timed out, TLS failed), never a token or an object's body. A 404 of ``get`` and
``force_sync`` is not an error (``None``: the object is gone), nor is a 409 of
``force_sync`` within its retries. The client's own ``ApiException`` is not chained: its
``str`` carries the response's headers and body.

Time. Every call passes ``_request_timeout=(timeout, timeout)``, and urllib3's own retries
are off (see :data:`RETRIES`): the rotator's one retry layer (ADR 0002) decides what to
repeat, so a dead cluster costs one connect timeout per call, not four.

Trust. A kubeconfig stored in Key Vault is as trusted as whoever may write that secret, so
:func:`cluster_from_kubeconfig_text` accepts only inline credentials and CA data: no file
paths (the client would read files of the function host), no exec plugins or auth providers
(it would run commands there), no cleartext ``http`` and no skipped TLS verification.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Final, TypeVar
from urllib.parse import urlsplit

import urllib3
import yaml
from kubernetes import client, config
from kubernetes.client import rest
from kubernetes.client.exceptions import ApiException
from urllib3.util.retry import Retry

from rotation.propagation import api as port
from rotation.propagation.confirm import FORCE_SYNC, force_sync_patch
from rotation.propagation.kube import CES_KIND, CSS_KIND, ES_KIND, SS_KIND

logger = logging.getLogger(__name__)

GROUP: Final = "external-secrets.io"
VERSIONS = ("v1", "v1beta1")
PLURALS = {ES_KIND: "externalsecrets", CES_KIND: "clusterexternalsecrets",
           SS_KIND: "secretstores", CSS_KIND: "clustersecretstores"}
CLUSTER_SCOPED = frozenset({CES_KIND, CSS_KIND})
FORCE_SYNC_KINDS = frozenset({ES_KIND, CES_KIND})  # what the role may patch
WORKLOADS = {"Deployment": "list_namespaced_deployment",
             "StatefulSet": "list_namespaced_stateful_set",
             "DaemonSet": "list_namespaced_daemon_set"}
FORCE_SYNC_ATTEMPTS = 5
"""PATCHes :meth:`Cluster.force_sync` sends while the object keeps changing under it (409)."""
MERGE_PATCH: Final = "application/merge-patch+json"

RETRIES: Final = Retry(total=0, redirect=0)
"""urllib3's retries inside the client: none, and no redirects followed.

Left unset, the client hands urllib3 its default ``Retry(3)``: every call to a cluster that
does not answer would wait four connect timeouts (and a GET four read timeouts) before the
rotator heard of it, under its own retry layer that repeats the call again (ADR 0002). With
``total=0`` the first failure is the call's failure. An API server never redirects; one that
does is refused rather than followed with the bearer token.
"""

T = TypeVar("T")


class ClusterError(port.ClusterError):
    """A call to a cluster failed; the message says which call, on which cluster, and why.

    A :class:`rotation.propagation.api.ClusterError`, so the propagation step, which knows
    clusters only through that port, handles it without importing this module.

    ``status`` is the HTTP status, or ``None`` when no answer came (connection refused,
    timeout, TLS failure) or the cluster could not be configured at all. ``retry_after`` is
    the server's ``Retry-After`` in seconds, if it sent one (429 from API Priority and
    Fairness). Messages never hold a token or an object's body.
    """

    def __init__(self, message: str, *, status: int | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class _Call:
    """What a message says about a call: ``patch externalsecrets.external-secrets.io/v1 apps/db``."""

    verb: str
    resource: str
    namespace: str = ""
    name: str = ""

    def __str__(self) -> str:
        if self.name:
            where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        else:
            where = f"in {self.namespace}" if self.namespace else "(all namespaces)"
        return f"{self.verb} {self.resource} {where}"


class Cluster:
    """One Kubernetes cluster the rotator propagates to.

    ``name`` is the operator's name for it, used in messages and logs. The cluster takes
    over ``api``: its urllib3 retries are turned off (:data:`RETRIES`), so build one
    ``ApiClient`` per cluster (the factories below do). ``timeout_seconds`` bounds the
    connect and the read of every call.
    """

    def __init__(self, name: str, api: client.ApiClient, *, timeout_seconds: float = 10.0) -> None:
        if not timeout_seconds > 0:
            raise ValueError("timeout_seconds must be positive")
        self.name = name
        self._api = api
        self._timeout = (float(timeout_seconds), float(timeout_seconds))
        if api.configuration.retries is not RETRIES:
            # the pool manager took its retries when the ApiClient was built: build it again
            api.configuration.retries = RETRIES
            api.rest_client.close()
            api.rest_client = rest.RESTClientObject(api.configuration)
        self._custom = client.CustomObjectsApi(api)
        self._apps = client.AppsV1Api(api)
        self._core = client.CoreV1Api(api)

    def __repr__(self) -> str:
        return f"Cluster(name={self.name!r})"

    def close(self) -> None:
        """Close the client's pooled connections."""
        self._api.close()  # type: ignore[no-untyped-call]

    # -- reading what matching needs -------------------------------------------------------

    def eso_objects(self) -> list[Mapping[str, object]]:
        """Every ES, CES, SecretStore and ClusterSecretStore, and the Namespaces if readable."""
        found: list[Mapping[str, object]] = []
        for kind, plural in PLURALS.items():
            found.extend(self._list_eso_kind(kind, plural))
        call = _Call("list", "namespaces")
        try:
            namespaces = self._call(call, lambda: self._core.list_namespace(_request_timeout=self._timeout))
        except ClusterError as exc:
            if exc.status in (401, 403):
                return found  # the role need not read Namespaces: conditions on them go unjudged
            raise
        found.extend(_items(self._plain(namespaces), "v1", "Namespace"))
        return found

    def _list_eso_kind(self, kind: str, plural: str) -> list[Mapping[str, object]]:
        for version in VERSIONS:
            call = _Call("list", f"{plural}.{GROUP}/{version}")
            try:
                answer = self._call(call, partial(self._custom.list_cluster_custom_object,
                                                  GROUP, version, plural, _request_timeout=self._timeout))
            except ClusterError as exc:
                if exc.status == 404:
                    continue  # this version is not served here
                raise
            return _items(answer, f"{GROUP}/{version}", kind)
        return []

    # -- one ExternalSecret or ClusterExternalSecret ---------------------------------------

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """The object (with ``apiVersion`` and ``kind``), or ``None`` if there is none.

        ``kind`` is one of the four ESO kinds; ``namespace`` is ``""`` for the cluster-scoped
        ClusterExternalSecret and ClusterSecretStore. ``api_version`` is
        ``external-secrets.io/v1`` or ``external-secrets.io/v1beta1``, whichever the object
        was listed at.
        """
        version, plural = _eso_resource(api_version, kind, namespace)
        call = _Call("get", f"{plural}.{GROUP}/{version}", namespace, name)
        if namespace:
            def send() -> object:
                return self._custom.get_namespaced_custom_object(
                    GROUP, version, namespace, plural, name, _request_timeout=self._timeout)
        else:
            def send() -> object:
                return self._custom.get_cluster_custom_object(
                    GROUP, version, plural, name, _request_timeout=self._timeout)
        try:
            answer = self._call(call, send)
        except ClusterError as exc:
            if exc.status == 404:
                return None
            raise
        return self._object(call, answer, api_version, kind)

    def force_sync(self, api_version: str, kind: str, namespace: str, name: str,
                   value: str) -> dict[str, Any] | None:
        """Ask ESO to re-sync the object now: set ``external-secrets.io/force-sync`` to ``value``.

        The patched object, or ``None`` if it is gone. ``value`` should be unique to the
        rotation: when the object already carries it, nothing is sent and the object is
        returned, so a resumed rotation (or a retry after a lost answer) does not make ESO
        sync twice. The JSON merge patch carries the ``resourceVersion`` of a fresh read, so
        it lands only on the object that read saw; on a 409 (someone wrote in between, often
        ESO updating the status) the object is read again and the patch resent, up to
        :data:`FORCE_SYNC_ATTEMPTS` times.
        """
        if kind not in FORCE_SYNC_KINDS:
            raise ValueError(f"force_sync applies to {sorted(FORCE_SYNC_KINDS)}, not {kind!r}")
        version, plural = _eso_resource(api_version, kind, namespace)
        call = _Call("patch", f"{plural}.{GROUP}/{version}", namespace, name)
        for attempt in range(1, FORCE_SYNC_ATTEMPTS + 1):
            current = self.get(api_version, kind, namespace, name)
            if current is None:
                return None
            metadata = current.get("metadata")
            metadata = metadata if isinstance(metadata, dict) else {}
            annotations = metadata.get("annotations")
            if isinstance(annotations, dict) and annotations.get(FORCE_SYNC) == value:
                return current
            patch = force_sync_patch(value)
            resource_version = metadata.get("resourceVersion")
            if isinstance(resource_version, str) and resource_version:
                patch["metadata"]["resourceVersion"] = resource_version
            try:
                answer = self._call(call, partial(self._send_patch, version, plural, namespace, name, patch))
            except ClusterError as exc:
                if exc.status == 404:
                    return None
                if exc.status != 409:
                    raise
                logger.info("force-sync conflict, reading again cluster=%s kind=%s namespace=%s "
                            "name=%s attempt=%d", self.name, kind, namespace, name, attempt)
                continue
            return self._object(call, answer, api_version, kind)
        raise ClusterError(f"{call} on cluster {self.name!r}: HTTP 409 Conflict on each of "
                           f"{FORCE_SYNC_ATTEMPTS} tries (the object keeps changing)", status=409)

    def _send_patch(self, version: str, plural: str, namespace: str, name: str,
                    body: dict[str, Any]) -> object:
        # The content type is named rather than left to the client's default: older clients
        # sent json-patch, turned into a strategic merge patch, which custom resources refuse.
        if namespace:
            return self._custom.patch_namespaced_custom_object(
                GROUP, version, namespace, plural, name, body,
                _request_timeout=self._timeout, _content_type=MERGE_PATCH)
        return self._custom.patch_cluster_custom_object(
            GROUP, version, plural, name, body,
            _request_timeout=self._timeout, _content_type=MERGE_PATCH)

    # -- workloads ---------------------------------------------------------------------------

    def workloads(self, namespace: str) -> list[dict[str, Any]]:
        """The Deployments, StatefulSets and DaemonSets of ``namespace``, as the API's JSON.

        Plain dicts in camelCase (``status.observedGeneration``), each with ``apiVersion``
        and ``kind`` (a list's items come without them), so :mod:`~rotation.propagation.confirm`
        reads them as it reads objects from YAML.
        """
        if not namespace:
            raise ValueError("workloads are read one namespace at a time")
        found: list[dict[str, Any]] = []
        for kind, method in WORKLOADS.items():
            call = _Call("list", f"{kind.lower()}s.apps/v1", namespace)
            listing = self._call(call, partial(getattr(self._apps, method), namespace,
                                               _request_timeout=self._timeout))
            found.extend(dict(item) for item in _items(self._plain(listing), "apps/v1", kind))
        return found

    # -- one place where the client's errors become ClusterError ------------------------------

    def _call(self, call: _Call, send: Callable[[], T]) -> T:
        try:
            return send()
        except ApiException as exc:
            raise self._api_error(call, exc) from None  # its str holds the response body
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            cause = exc.reason if isinstance(exc, urllib3.exceptions.MaxRetryError) else exc
            raise ClusterError(f"{call} on cluster {self.name!r}: no HTTP status, "
                               f"{_describe(cause)}") from exc
        except (ValueError, TypeError) as exc:
            # the client's typed models (pydantic) refuse an answer that lacks a field the API
            # declares required; the message quotes the offending input, so it is not chained
            raise ClusterError(f"{call} on cluster {self.name!r}: the client could not use the "
                               f"answer ({type(exc).__name__})") from None

    def _api_error(self, call: _Call, exc: ApiException) -> ClusterError:
        status = exc.status if isinstance(exc.status, int) and exc.status > 0 else None
        if status is None:  # the client's own wrapping of a TLS failure
            reason = " ".join(str(exc.reason or "no answer").split())[:300]
            return ClusterError(f"{call} on cluster {self.name!r}: no HTTP status, {reason}")
        hint = {401: " (the cluster does not accept the credential)",
                403: " (the role does not allow it; see infra/k8s/rbac.yaml)"}.get(status, "")
        return ClusterError(f"{call} on cluster {self.name!r}: HTTP {status} {exc.reason or ''}"
                            .rstrip() + hint,
                            status=status, retry_after=_retry_after(exc))

    def _object(self, call: _Call, answer: object, api_version: str, kind: str) -> dict[str, Any]:
        if not isinstance(answer, dict):
            raise ClusterError(f"{call} on cluster {self.name!r}: the answer is not a JSON object")
        return {**answer, "apiVersion": answer.get("apiVersion") or api_version,
                "kind": answer.get("kind") or kind}

    def _plain(self, model: object) -> object:
        """A typed model of the client as the API's own JSON (camelCase keys, plain types)."""
        return self._api.sanitize_for_serialization(model)  # type: ignore[no-untyped-call]


# -- building clusters -------------------------------------------------------------------------

def cluster_from_kubeconfig_text(name: str, text: str, *, timeout_seconds: float = 10.0) -> Cluster:
    """A cluster from a kubeconfig's text (YAML or JSON), refusing anything but inline credentials.

    The text comes from a Key Vault secret, so whoever may write that secret writes it: it
    must not make the client read files of the function host (``certificate-authority``,
    ``client-certificate``, ``client-key``, ``tokenFile``), run commands there (``exec``,
    ``auth-provider``), talk cleartext or skip TLS verification. Every cluster and user entry
    is checked, not only the current context's. Refusals raise :class:`ClusterError` naming
    the field, never its value. The client writes inline CA and client-certificate data to
    private temporary files of its own (``ssl`` loads certificates from files only).
    """
    where = f"kubeconfig for cluster {name!r}"
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        # the parser's message quotes the offending line, which may hold the token
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ClusterError(f"{where}: not YAML{at}") from None
    except RecursionError:  # the composer recurses once per level of nesting
        raise ClusterError(f"{where}: not YAML (nested too deeply)") from None
    vetted = _vet_kubeconfig(document, where)
    configuration = client.Configuration()
    configuration.retries = RETRIES
    try:
        config.load_kube_config_from_dict(  # type: ignore[no-untyped-call]
            vetted, client_configuration=configuration, persist_config=False)
    except (config.ConfigException, OSError, ValueError, KeyError, TypeError) as exc:
        raise ClusterError(f"{where}: the client could not load it ({type(exc).__name__})") from None
    return Cluster(name, client.ApiClient(configuration), timeout_seconds=timeout_seconds)


def cluster_in_cluster(name: str = "in-cluster", *, timeout_seconds: float = 10.0) -> Cluster:
    """The cluster the rotator runs in, as its pod's service account (token re-read as it rotates)."""
    configuration = client.Configuration()
    configuration.retries = RETRIES
    try:
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    except (config.ConfigException, OSError) as exc:
        raise ClusterError(f"cluster {name!r}: not running in a Kubernetes pod ({exc})") from None
    return Cluster(name, client.ApiClient(configuration), timeout_seconds=timeout_seconds)


def client_from_kubeconfig(path: Path, context: str | None = None) -> client.ApiClient:
    """An API client for ``context`` (default: the file's current context).

    For ``akv-rotator consumers`` on an operator's own machine, whose kubeconfig is trusted as
    the operator is (exec plugins and file paths work); the rotator itself uses
    :func:`cluster_from_kubeconfig_text`.
    """
    try:
        made: client.ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=str(path), context=context)
        return made
    except (config.ConfigException, OSError, ValueError) as exc:
        raise ClusterError(f"cannot use kubeconfig {path}: {exc}") from None


def eso_objects(api: client.ApiClient) -> list[Mapping[str, object]]:
    """Every ES, CES, SecretStore and ClusterSecretStore, and the Namespaces if readable.

    :meth:`Cluster.eso_objects` on ``api``, named after its server in messages.
    """
    return Cluster(str(api.configuration.host), api).eso_objects()


# -- vetting a kubeconfig ------------------------------------------------------------------------

_FILE_FIELDS = {"cluster": ("certificate-authority",),
                "user": ("client-certificate", "client-key", "tokenFile")}
_COMMAND_FIELDS = ("exec", "auth-provider")
_DATA_FIELDS = {"cluster": ("certificate-authority-data",),
                "user": ("client-certificate-data", "client-key-data")}


def _vet_kubeconfig(document: object, where: str) -> dict[str, Any]:
    """The current context, its cluster and its user, as a kubeconfig dict, once all are safe.

    Only these three entries reach the client, so nothing this function did not look at
    can change what the client does.
    """
    if not isinstance(document, dict):
        raise ClusterError(f"{where}: not a kubeconfig (not a mapping)")
    entries: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for section, inner in (("clusters", "cluster"), ("users", "user"), ("contexts", "context")):
        entries[section] = _named_entries(document.get(section), section, inner, where)
    current = document.get("current-context")
    if not isinstance(current, str) or not current:
        raise ClusterError(f"{where}: not a kubeconfig (no current-context)")
    for index, (_, cluster) in enumerate(entries["clusters"]):
        _vet_cluster(cluster, f"clusters[{index}].cluster", where)
    for index, (_, user) in enumerate(entries["users"]):
        _vet_user(user, f"users[{index}].user", where)
    context = _only(entries["contexts"], current, "current-context", "context", where)
    cluster_name, user_name = context.get("cluster"), context.get("user")
    if not isinstance(cluster_name, str) or not isinstance(user_name, str):
        raise ClusterError(f"{where}: the current context needs a cluster and a user")
    cluster = _only(entries["clusters"], cluster_name, "the current context's cluster", "cluster", where)
    user = _only(entries["users"], user_name, "the current context's user", "user", where)
    return {
        "apiVersion": "v1", "kind": "Config", "current-context": current,
        "contexts": [{"name": current, "context": {"cluster": cluster_name, "user": user_name}}],
        "clusters": [{"name": cluster_name, "cluster": cluster}],
        "users": [{"name": user_name, "user": user}],
    }


def _named_entries(value: object, section: str, inner: str,
                   where: str) -> list[tuple[str, dict[str, Any]]]:
    if not isinstance(value, list) or not value:
        raise ClusterError(f"{where}: not a kubeconfig (no {section} list)")
    entries: list[tuple[str, dict[str, Any]]] = []
    for index, entry in enumerate(value):
        body = entry.get(inner) if isinstance(entry, dict) else None
        entry_name = entry.get("name") if isinstance(entry, dict) else None
        if not isinstance(entry_name, str) or not entry_name or not isinstance(body, dict):
            raise ClusterError(f"{where}: {section}[{index}] needs a name and a {inner} mapping")
        entries.append((entry_name, body))
    return entries


def _only(entries: list[tuple[str, dict[str, Any]]], wanted: str, field: str, kind: str,
          where: str) -> dict[str, Any]:
    found = [body for entry_name, body in entries if entry_name == wanted]
    if len(found) != 1:
        problem = f"names no {kind}" if not found else f"names {len(found)} {kind} entries"
        raise ClusterError(f"{where}: {field} {problem}")
    return found[0]


def _vet_cluster(cluster: dict[str, Any], path: str, where: str) -> None:
    _refuse_files(cluster, "cluster", path, where)
    server = cluster.get("server")
    if not isinstance(server, str) or urlsplit(server).scheme.lower() != "https" \
            or not urlsplit(server).hostname:
        raise ClusterError(f"{where}: {path}.server must be an https:// URL")
    # the client reads any value but a true boolean false as "skip": "false" as a string too
    if cluster.get("insecure-skip-tls-verify", False) is not False:
        raise ClusterError(f"{where}: {path}.insecure-skip-tls-verify is refused: "
                           "the server's certificate is always verified")
    _check_base64(cluster, "cluster", path, where)


def _vet_user(user: dict[str, Any], path: str, where: str) -> None:
    for field in _COMMAND_FIELDS:
        if field in user:
            raise ClusterError(f"{where}: {path}.{field} is refused: it runs a command on the "
                               "function host; use a token or a client certificate")
    _refuse_files(user, "user", path, where)
    _check_base64(user, "user", path, where)
    token = user.get("token")
    if token is not None and (not isinstance(token, str) or not token
                              or any(c.isspace() or not c.isprintable() for c in token)):
        raise ClusterError(f"{where}: {path}.token must be one non-empty word")
    certificate, key = user.get("client-certificate-data"), user.get("client-key-data")
    if bool(certificate) != bool(key):
        raise ClusterError(f"{where}: {path} needs both client-certificate-data and client-key-data")
    if not token and not certificate:
        raise ClusterError(f"{where}: {path} has no credential: "
                           "give a token or client-certificate-data and client-key-data")


def _refuse_files(entry: dict[str, Any], kind: str, path: str, where: str) -> None:
    for field in _FILE_FIELDS[kind]:
        if field in entry:
            inline = "token" if field == "tokenFile" else f"{field}-data"
            raise ClusterError(f"{where}: {path}.{field} is refused: it names a file on the "
                               f"function host; give {inline} inline")


def _check_base64(entry: dict[str, Any], kind: str, path: str, where: str) -> None:
    for field in _DATA_FIELDS[kind]:
        value = entry.get(field)
        if value is None:
            continue
        try:
            if not isinstance(value, str):
                raise ValueError
            base64.b64decode(value, validate=True)
        except (ValueError, binascii.Error):
            raise ClusterError(f"{where}: {path}.{field} is not base64") from None


# -- small helpers -------------------------------------------------------------------------------

def _eso_resource(api_version: str, kind: str, namespace: str) -> tuple[str, str]:
    """(version, plural) of an ESO object reference; ``ValueError`` for a caller's mistake."""
    group, _, version = api_version.partition("/")
    if group != GROUP or version not in VERSIONS:
        raise ValueError(f"not an ESO apiVersion: {api_version!r}")
    plural = PLURALS.get(kind)
    if plural is None:
        raise ValueError(f"not an ESO kind: {kind!r}")
    if (kind in CLUSTER_SCOPED) == bool(namespace):
        raise ValueError(f"{kind} is {'cluster-scoped' if kind in CLUSTER_SCOPED else 'namespaced'}: "
                         f"namespace {namespace!r} does not fit")
    return version, plural


def _items(answer: Any, api_version: str, kind: str) -> list[Mapping[str, object]]:
    """A list's items, with the apiVersion and kind the API server leaves out of them."""
    items = answer.get("items", []) if isinstance(answer, dict) else []
    return [{**item, "apiVersion": api_version, "kind": kind} for item in items if isinstance(item, dict)]


def _describe(error: object) -> str:
    """An exception as ``Type: message`` on one line, cut short."""
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}"[:300]


def _retry_after(exc: ApiException) -> float | None:
    headers = exc.headers or {}
    value = headers.get("Retry-After") if hasattr(headers, "get") else None
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None
