"""``KubernetesTwin``: the public face of the twin, wiring kinds, schemas, store, RBAC, faults and server.

A test starts one, seeds objects with :meth:`KubernetesTwin.put`, gives the code under test
a kubeconfig (:meth:`~KubernetesTwin.kubeconfig`) or an ``ApiClient``
(:meth:`~KubernetesTwin.api_client`) for a token with exactly the rights it should have, and
asserts on the objects afterwards (:meth:`~KubernetesTwin.get`, :meth:`~KubernetesTwin.objects`)
and on what the server saw (:attr:`~KubernetesTwin.requests`). Controllers that play ESO or
Reloader subscribe with :meth:`~KubernetesTwin.watch` and write through :attr:`store`.
Everything runs in-process on background threads; ``stop()`` (or leaving the ``with``
block) tears it down; temporary certificates go with the object.
"""

from __future__ import annotations

import logging
import os
import secrets
import ssl
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from twins.http.faults import FaultControls
from twins.http.lifecycle import HTTPSTwin
from twins.kubernetes.errors import ApiError
from twins.kubernetes.faults import Fault, FaultInjector, RequestLog
from twins.kubernetes.kinds import BUILTIN_TYPES, ESO_VERSIONS, Obj, Registry, eso_types
from twins.kubernetes.kubeconfig import write_kubeconfig
from twins.kubernetes.rbac import ADMIN_RULES, Authenticator, Identity, PolicyRule, identities_from
from twins.kubernetes.routes import KubeApp
from twins.kubernetes.schema import CrdSchemas
from twins.kubernetes.server import TwinHTTPServer
from twins.kubernetes.store import INITIAL_NAMESPACES, ObjectStore, WatchCallback
from twins.kubernetes.validation import Validator

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

logger = logging.getLogger(__name__)

DEFAULT_CRD_DIR = Path(__file__).resolve().parents[3] / "shared" / "eso-crds"
"""``../shared/eso-crds`` next to the project checkout: the unmodified ESO v2.9.0 CRDs."""
CRD_DIR_SETTING = "AKV_ROTATOR_ESO_CRDS"


def eso_crd_dir() -> Path | None:
    """Where the tests and benchmarks find the ESO CRDs: ``AKV_ROTATOR_ESO_CRDS``, else
    :data:`DEFAULT_CRD_DIR`; None when that folder is not there (a clone without ../shared)."""
    path = Path(os.environ.get(CRD_DIR_SETTING) or DEFAULT_CRD_DIR)
    return path if path.is_dir() else None
ADMIN_USER = "twin-admin"


class KubernetesTwin(HTTPSTwin, FaultControls[Fault]):
    """An HTTPS Kubernetes API server for Secrets, Namespaces, apps workloads and the ESO kinds.

    ``tokens`` maps bearer tokens to an :class:`~twins.kubernetes.rbac.Identity` or to bare
    :class:`~twins.kubernetes.rbac.PolicyRule` lists; a cluster-admin token is always added
    (:attr:`admin_token`). ``crd_dir`` holds the ESO CRD files whose ``openAPIV3Schema``
    validates ESO objects; ``None`` or a missing directory serves them unvalidated (logged).
    ``eso_versions`` are the served ESO versions, preferred first. ``clock`` (Unix seconds)
    stamps ``creationTimestamp`` and ``deletionTimestamp``. Start, stop, ``with`` and
    ``ca_path`` come from :class:`~twins.http.lifecycle.HTTPSTwin`.
    """

    fault_type = Fault

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        cert_dir: str | Path | None = None,
        *,
        tokens: Mapping[str, Identity | Sequence[PolicyRule]] | None = None,
        crd_dir: str | Path | None = DEFAULT_CRD_DIR,
        eso_versions: Iterable[str] = ESO_VERSIONS,
        clock: Callable[[], float] = time.time,
        namespaces: Iterable[str] = INITIAL_NAMESPACES,
    ) -> None:
        super().__init__(
            host,
            port,
            cert_dir,
            thread_name="kubernetes-twin",
            cert_prefix="k8s-twin-",
            organization="akv-rotator Kubernetes twin",
        )
        self.admin_token = secrets.token_urlsafe(32)
        identities = {
            self.admin_token: Identity(ADMIN_USER, ADMIN_RULES, ("system:masters", "system:authenticated"))
        }
        identities.update(identities_from(tokens or {}))
        self._identities = identities
        self.crds = _load_crds(crd_dir)
        self.registry = Registry((*BUILTIN_TYPES, *eso_types(eso_versions)))
        self.store = ObjectStore(self.registry, Validator(self.crds), clock, namespaces)
        self._faults = FaultInjector()
        self._log = RequestLog()
        self._app = KubeApp(self.registry, self.store, Authenticator(identities), self._faults, self._log)

    def __repr__(self) -> str:
        where = self._app.base_url or "not started"
        return f"KubernetesTwin(url={where!r})"

    # -- lifecycle (the rest is HTTPSTwin's) ------------------------------------------

    def _make_server(self, address: tuple[str, int], context: ssl.SSLContext) -> TwinHTTPServer:
        return TwinHTTPServer(address, self._app.handle, context)

    def _on_bound(self, base_url: str) -> None:
        self._app.base_url = base_url

    # -- where it is and who may call ----------------------------------------------------

    @property
    def url(self) -> str:
        """``https://host:port`` of the running API server."""
        return self._started_url()

    @property
    def validating(self) -> bool:
        """Whether ESO objects are validated against CRD schemas."""
        return self.crds is not None

    def identity(self, token: str) -> Identity:
        """Who ``token`` authenticates as (``KeyError`` for a token the twin does not know)."""
        return self._identities[token]

    def kubeconfig(self, token: str | None = None, namespace: str = "default") -> Path:
        """Write a kubeconfig for ``token`` (default: the admin token) next to the CA; its path.

        ``kubernetes.config.load_kube_config(config_file=str(path))`` and ``kubectl
        --kubeconfig`` both read it. The file holds the token and is mode 0600.
        """
        token = token or self.admin_token
        identity = self.identity(token)
        url = self._started_url()
        return write_kubeconfig(
            self.ca_path.parent, url, self.ca_path, identity.name, token, namespace=namespace
        )

    def api_client(self, token: str | None = None) -> ApiClient:
        """A ``kubernetes.client.ApiClient`` for ``token``, configured from :meth:`kubeconfig`.

        Proxies from the environment are ignored: a loopback twin is never behind one.
        """
        from kubernetes import client, config

        configuration = client.Configuration()
        config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=str(self.kubeconfig(token)), client_configuration=configuration)
        configuration.proxy = None
        return client.ApiClient(configuration)

    # -- state ------------------------------------------------------------------------

    def put(self, obj: Obj) -> Obj:
        """Create or overwrite ``obj`` (status included) without auth; the stored object.

        Validated (unknown fields refused), defaulted and versioned like any write, and
        watchers are told. A namespaced object's namespace (``default`` if unset) is created
        if missing. Raises :class:`~twins.kubernetes.errors.ApiError` (422) if invalid.
        """
        return self.store.put(obj)

    def get(self, api_version: str, kind: str, namespace: str | None, name: str) -> Obj | None:
        """The object, served at ``api_version``, or ``None`` if there is none."""
        resource_type, version = self.registry.for_object(api_version, kind)
        try:
            return self.store.get(resource_type, version, namespace or "", name)
        except ApiError as error:
            if error.code == 404:
                return None
            raise

    def delete(self, api_version: str, kind: str, namespace: str | None, name: str) -> bool:
        """Delete the object without auth (finalizers still hold it); False if there was none."""
        resource_type, version = self.registry.for_object(api_version, kind)
        try:
            self.store.delete(resource_type, version, namespace or "", name)
        except ApiError as error:
            if error.code == 404:
                return False
            raise
        return True

    def objects(self, kind: str) -> list[Obj]:
        """Every object of ``kind`` (``"ExternalSecret"``, ``"Deployment"``...), by namespace and name."""
        return self.store.objects(self.registry.by_kind(kind))

    def watch(self, callback: WatchCallback) -> Callable[[], None]:
        """Call ``callback(event_type, obj)`` after every write; returns a function that unsubscribes.

        ``event_type`` is ``"ADDED"``, ``"MODIFIED"`` or ``"DELETED"`` (the watch event types),
        ``obj`` a copy at the kind's preferred version. Callbacks run after the write is
        committed, in commit order, outside the store lock, on a request thread: keep them
        short (queue the event for your own thread).
        """
        return self.store.subscribe(callback)

    # -- faults and log ---------------------------------------------------------------

    @property
    def requests(self) -> RequestLog:
        """Every API request seen so far."""
        return self._log


def _load_crds(crd_dir: str | Path | None) -> CrdSchemas | None:
    if crd_dir is None:
        logger.info("no CRD directory given: ESO objects are served without schema validation")
        return None
    directory = Path(crd_dir)
    if not directory.is_dir():
        logger.warning(
            "CRD directory %s not found: ESO objects are served without schema validation", directory
        )
        return None
    schemas = CrdSchemas.load(directory)
    logger.info("validating with CRDs files=%d versions=%d", len(schemas.files), len(schemas.versions))
    return schemas
