"""External Secrets Operator v2.9.0, as the twin runs it: ExternalSecrets synced from Key Vault.

:class:`EsoController` follows ``pkg/controllers/externalsecret/externalsecret_controller.go``
(``Reconcile``, ``shouldRefresh``, ``isSecretValid``, ``markAsDone``/``markAsFailed``,
``createSecret``/``updateSecret``, ``applyOwnership``), ``..._secret.go``
(``GetProviderSecretData``), ``..._template.go`` (``ApplyTemplate``, ``setMetadata``),
``pkg/controllers/secretstore`` (the store's Ready condition, ``client_manager.go``'s store
lookup, controller class, ClusterSecretStore conditions and the flood gate). Reading Key
Vault is the azurekv provider's part: :mod:`~twins.kubernetes.controllers.azurekv`.

What a reconcile of one ExternalSecret does, in ESO's order:

1. deleted: with ``deletionPolicy: Delete`` delete the target Secret it controls, then drop
   the finalizer ``externalsecrets.external-secrets.io/externalsecret-cleanup``; otherwise
   add that finalizer (a metadata patch);
2. skip it if a store it uses names another controller class (``spec.controller``);
3. the target Secret (``spec.target.name``, default the ES name) exists without the label
   ``reconcile.external-secrets.io/managed=true``: add the label and requeue;
4. **skip path**: ``!shouldRefresh(es) && isSecretValid(secret)`` leaves status untouched.
   ``shouldRefresh`` by ``refreshPolicy``: ``CreatedOnce`` only before the first sync;
   ``OnChange`` when ``status.syncedResourceVersion`` differs from ``"<generation>-<hash of
   labels and annotations>"``; ``Periodic`` (default) likewise, except that with
   ``refreshInterval`` 0 it never refreshes once synced, and also when ``refreshTime +
   refreshInterval`` has passed. ``isSecretValid``: the Secret exists, carries the managed
   label and its ``reconcile.external-secrets.io/data-hash`` matches its data (always true
   for ``creationPolicy: Orphan``);
5. read every ``dataFrom`` (``extract``, ``find``) then every ``data`` item from the vault of
   the item's store; a missing secret is skipped (event ``MissingProviderSecret``) unless
   ``deletionPolicy`` is ``Retain`` (the default), where it fails the sync;
6. write the Secret per ``creationPolicy`` (Owner: controller ownerReference and label
   ``reconcile.external-secrets.io/created-by``; Orphan; Merge; None), copying the ES's
   labels and annotations when there is no template, then the managed label and data hash;
7. status (``PUT .../status`` with the resourceVersion read, 409 requeues): success sets
   Ready True ``SecretSynced`` "secret synced", ``refreshTime`` (the reconcile's start,
   whole seconds), ``syncedResourceVersion`` and ``binding.name``; failure sets Ready False
   ``SecretSyncedError`` with ESO's message ("could not get secret data from provider",
   "could not update secret"...) and leaves the Secret, ``refreshTime`` and
   ``syncedResourceVersion`` alone. ``lastTransitionTime`` moves only when the status flips.

Periodic refresh: after a sync the ES is requeued when ``refreshInterval`` is up (real
seconds, measured with ``clock``); :meth:`EsoController.tick` requeues every ES at once
instead, and ``shouldRefresh`` decides as above. Failed syncs retry with controller-runtime's
backoff. Stores get ESO's status: Ready True ``Valid`` "store validated" and capabilities
``ReadWrite`` for azurekv. Kubernetes' garbage collector is played for ES-owned Secrets.

Not reproduced (a sync using one of these fails with a message naming it, or the field is
ignored where noted): templates with ``data``/``templateFrom`` (Go templates), ``rewrite``,
generators, ``cert/`` and ``key/`` objects (the Key Vault twin serves secrets only), generic
``target.manifest`` targets (skipped), ``syncWindows`` (ignored: periodic refresh is always
allowed), ClusterExternalSecrets and PushSecrets, managedFields (the keys this ES wrote are
remembered in memory instead), the partial secret cache, metrics.
"""

from __future__ import annotations

import base64
import copy
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from twins.kubernetes.controllers.azurekv import AzureKV, ProviderError, decode, null_byte_message
from twins.kubernetes.controllers.gocompat import (
    go_search,
    object_hash,
    parse_duration,
    parse_rfc3339,
    resource_version,
    rfc3339,
)
from twins.kubernetes.controllers.runtime import (
    DEFAULT_BACKOFF,
    Controller,
    EventRecorder,
    Result,
    WorkQueue,
    object_key,
)
from twins.kubernetes.controllers.vaults import VaultReader, VaultSource, as_reader, normalise_vault_url
from twins.kubernetes.errors import ApiError
from twins.kubernetes.kinds import Obj
from twins.kubernetes.selectors import Requirement

if TYPE_CHECKING:
    from twins.kubernetes.twin import KubernetesTwin

logger = logging.getLogger(__name__)

ES_KIND = "ExternalSecret"
STORE_KIND = "SecretStore"
CLUSTER_STORE_KIND = "ClusterSecretStore"
STORE_KINDS = (STORE_KIND, CLUSTER_STORE_KIND)
ESO_GROUP = "external-secrets.io"

FINALIZER = "externalsecrets.external-secrets.io/externalsecret-cleanup"
LABEL_MANAGED = "reconcile.external-secrets.io/managed"
LABEL_MANAGED_VALUE = "true"
LABEL_OWNER = "reconcile.external-secrets.io/created-by"
ANNOTATION_DATA_HASH = "reconcile.external-secrets.io/data-hash"
ANNOTATION_FORCE_SYNC = "external-secrets.io/force-sync"
DEFAULT_REFRESH_INTERVAL = "1h0m0s"  # the CRD's default

READY = "Ready"
REASON_SYNCED = "SecretSynced"
REASON_SYNCED_ERROR = "SecretSyncedError"
REASON_DELETED = "SecretDeleted"
REASON_MISSING = "SecretMissing"
REASON_STORE_VALID = "Valid"
REASON_INVALID_PROVIDER = "InvalidProviderConfig"

MSG_SYNCED = "secret synced"
MSG_SYNCED_RETAIN = "secret retained due to DeletionPolicy=Retain"
MSG_DELETED = "secret deleted due to DeletionPolicy=Delete"
MSG_MISSING = "secret will not be created due to CreationPolicy=Merge"
MSG_ERROR_GET_SECRET_DATA = "could not get secret data from provider"
MSG_ERROR_DELETE_SECRET = "could not delete secret"
MSG_ERROR_DELETE_ORPHANED = "could not delete orphaned secrets"
MSG_ERROR_UPDATE_SECRET = "could not update secret"
MSG_ERROR_UPDATE_IMMUTABLE = "could not update secret, target is immutable"
MSG_ERROR_BECOME_OWNER = "failed to take ownership of target secret"
MSG_ERROR_IS_OWNED = "target is owned by another ExternalSecret"
MSG_STORE_VALIDATED = "store validated"
MSG_UNABLE_CREATE_CLIENT = "unable to create client"

EVENT_CREATED = "secret created"
EVENT_UPDATED = "secret updated"
EVENT_DELETED = "secret deleted due to DeletionPolicy=Delete"
EVENT_DELETED_ORPHANED = "secret deleted because it was orphaned"
COMPONENT = "external-secrets"

EsKey = tuple[str, str]  # namespace, name
StoreKey = tuple[str, str, str]  # kind, namespace ("" for a ClusterSecretStore), name
Outcome = tuple[Result | None, bool]  # the reconcile's result, and whether ESO returns an error


class _SecretWriteError(Exception):
    """Writing the target failed: the condition message, and whether ESO retries."""

    def __init__(self, condition: str, detail: str, *, retry: bool) -> None:
        super().__init__(detail)
        self.condition = condition
        self.retry = retry


@dataclass
class _Written:
    """What this ExternalSecret last wrote into its Secret (what managedFields would record)."""

    labels: set[str] = field(default_factory=set)
    annotations: set[str] = field(default_factory=set)
    data: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class _Watched:
    """The parts of an ExternalSecret whose change queues it (``shouldEnqueueExternalSecretUpdate``)."""

    generation: int
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    finalizers: tuple[str, ...]
    deletion: str | None

    @classmethod
    def of(cls, obj: Obj) -> _Watched:
        metadata = obj.get("metadata", {})
        return cls(
            int(metadata.get("generation") or 0),
            dict(metadata.get("labels") or {}),
            dict(metadata.get("annotations") or {}),
            tuple(metadata.get("finalizers") or ()),
            metadata.get("deletionTimestamp"),
        )


class EsoController(Controller):
    """ESO's ExternalSecret and SecretStore controllers over the twin's store.

    ``vaults`` maps a vault URL (normalised with
    :func:`~twins.kubernetes.controllers.vaults.normalise_vault_url`, so
    ``https://KV.vault.azure.net/`` and ``https://kv.vault.azure.net`` are one key) to what
    reads it: a ``SecretClient``, a ``KeyVaultTwin``, a
    :class:`~twins.kubernetes.controllers.vaults.VaultReader`, or ``read(name, version) ->
    (value, tags)``. A store whose ``vaultUrl`` is not there cannot read anything (the sync
    fails as an unreachable vault does). ``clock`` (Unix seconds) stamps ``refreshTime`` and
    conditions and decides periodic refreshes. ``controller_class`` is ESO's
    ``--controller-class``; ``flood_gate`` its ``--enable-flood-gate`` (default on: an ES
    whose store is not Ready fails). ``backoff`` is the retry backoff (base, cap) in seconds.
    """

    component = COMPONENT

    def __init__(
        self,
        twin: KubernetesTwin,
        vaults: Mapping[str, VaultSource] | None = None,
        *,
        clock: Callable[[], float] = time.time,
        controller_class: str = "",
        flood_gate: bool = True,
        backoff: tuple[float, float] = DEFAULT_BACKOFF,
        recorder: EventRecorder | None = None,
    ) -> None:
        super().__init__(twin, recorder)
        self._clock = clock
        self.controller_class = controller_class
        self.flood_gate = flood_gate
        self._vaults: dict[str, VaultReader] = {}
        for url, source in (vaults or {}).items():
            self.set_vault(url, source)
        self._es_queue: WorkQueue[EsKey] = WorkQueue(
            "eso-externalsecrets", self._reconcile_external_secret, backoff=backoff
        )
        self._store_queue: WorkQueue[StoreKey] = WorkQueue(
            "eso-secretstores", self._reconcile_store, backoff=backoff
        )
        self._lock = threading.Lock()
        self._watched: dict[EsKey, _Watched] = {}
        self._stores: dict[StoreKey, _Watched] = {}
        self._targets: dict[EsKey, str] = {}  # ES -> target Secret name
        self._gone: dict[EsKey, str] = {}  # deleted ES -> its uid, for the garbage collector
        self._written: dict[EsKey, _Written] = {}

    def __repr__(self) -> str:
        return f"EsoController(vaults={sorted(self._vaults)!r})"

    @property
    def queues(self) -> Iterable[WorkQueue[Any]]:
        """The ExternalSecret and store queues."""
        return (self._es_queue, self._store_queue)

    def set_vault(self, url: str, source: VaultSource) -> None:
        """Read the vault at ``url`` through ``source`` from now on."""
        self._vaults[normalise_vault_url(url)] = as_reader(source)

    def tick(self) -> None:
        """Queue every ExternalSecret now, as its refresh timer would (``shouldRefresh`` decides)."""
        for es in self._list(ES_KIND):
            self._es_queue.add(object_key(es))

    # -- events -------------------------------------------------------------------------

    def initial_sync(self) -> None:
        """Validate every store now (so seeded stores are Ready first), queue every ExternalSecret."""
        for kind in STORE_KINDS:
            for store in self._list(kind):
                with self._lock:
                    self._stores[_store_key(store)] = _Watched.of(store)
                self._reconcile_store(_store_key(store))
        for es in self._list(ES_KIND):
            self._on_external_secret("ADDED", es)

    def on_event(self, event_type: str, obj: Obj) -> None:
        """Queue the ExternalSecrets and stores a change concerns."""
        kind = obj.get("kind")
        if kind == ES_KIND:
            self._on_external_secret(event_type, obj)
        elif kind in STORE_KINDS:
            self._on_store(event_type, obj)
        elif kind == "Secret":
            self._on_secret(obj)

    def _on_external_secret(self, event_type: str, obj: Obj) -> None:
        key = object_key(obj)
        watched = _Watched.of(obj)
        with self._lock:
            if event_type == "DELETED":
                self._watched.pop(key, None)
                self._targets.pop(key, None)
                self._gone[key] = str(obj["metadata"].get("uid", ""))
                changed = True
            else:
                changed = event_type == "ADDED" or self._watched.get(key) != watched
                self._watched[key] = watched
                self._targets[key] = _target_name(obj)
        if changed:  # status-only updates are not queued (ESO >= 2.3, PR #6021)
            self._es_queue.add(key)

    def _on_store(self, event_type: str, obj: Obj) -> None:
        key = _store_key(obj)
        watched = _Watched.of(obj)
        with self._lock:
            if event_type == "DELETED":
                self._stores.pop(key, None)
                return
            changed = self._stores.get(key) != watched
            self._stores[key] = watched
        if changed:
            self._store_queue.add(key)

    def _on_secret(self, secret: Obj) -> None:
        labels = secret.get("metadata", {}).get("labels") or {}
        if labels.get(LABEL_MANAGED) != LABEL_MANAGED_VALUE:
            return
        namespace, name = object_key(secret)
        with self._lock:
            owners = [key for key, target in self._targets.items() if key[0] == namespace and target == name]
        for key in owners:
            self._es_queue.add(key)

    # -- the ExternalSecret reconcile -----------------------------------------------------

    def _reconcile_external_secret(self, key: EsKey) -> Result | None:
        namespace, name = key
        start = self._clock()
        es = self._get(ES_KIND, namespace, name)
        if es is None:
            self._collect_garbage(key)
            return None
        self._collect_garbage(key, current_uid=str(es["metadata"].get("uid", "")))  # deleted and recreated
        if es["metadata"].get("deletionTimestamp"):
            return self._finalize(es)
        if FINALIZER not in (es["metadata"].get("finalizers") or []):
            es = self._patch(ES_KIND, es, lambda obj: _add_finalizer(obj, FINALIZER))
        try:
            if self._uses_unmanaged_store(es):
                logger.debug("eso skip es=%s/%s reason=unmanaged-store", namespace, name)
                return None
        except ProviderError as exc:
            logger.warning("eso unmanaged-store check failed es=%s/%s error=%s", namespace, name, exc)
            return Result(requeue=True)
        target = _spec(es).get("target") or {}
        if target.get("manifest"):
            logger.warning("eso skip es=%s/%s reason=generic-target-not-served", namespace, name)
            return None
        secret_name = _target_name(es)
        existing = self._get("Secret", namespace, secret_name)
        if existing is not None and _labels(existing).get(LABEL_MANAGED) != LABEL_MANAGED_VALUE:
            self._patch("Secret", existing, _add_managed_label)
            return Result(requeue=True)
        if not self._should_refresh(es, start) and _secret_valid(existing, es):
            logger.debug("eso skip es=%s/%s reason=no-refresh-needed", namespace, name)
            return self._requeue_result(es)
        before = _go_status(es.get("status"))
        result, failed = self._sync(es, existing, secret_name, start)
        conflict = self._write_status(es, before)
        if failed or conflict:
            return Result(requeue=True)
        return result

    def _sync(self, es: Obj, existing: Obj | None, secret_name: str, start: float) -> Outcome:
        """Read the provider and write the Secret: (result, whether ESO returns an error)."""
        namespace, name = object_key(es)
        target = _spec(es).get("target") or {}
        try:
            data = self._provider_data(es)
        except ProviderError as exc:
            self._mark_failed(es, MSG_ERROR_GET_SECRET_DATA, str(exc))
            logger.info("eso sync failed es=%s/%s error=%s", namespace, name, exc)
            return None, True
        if not data and (target.get("deletionPolicy") or "Retain") in ("Delete", "Retain"):
            return self._sync_nothing(es, existing, secret_name, start)
        try:
            done = self._write_by_policy(es, existing, data, secret_name)
        except ApiError as exc:
            if exc.reason == "Conflict":
                logger.debug("eso secret conflict es=%s/%s", namespace, name)
                return Result(requeue=True), False
            self._mark_failed(es, MSG_ERROR_UPDATE_SECRET, f"unable to update secret {secret_name}: {exc}")
            return None, True
        except _SecretWriteError as exc:
            self._mark_failed(es, exc.condition, str(exc))
            return None, exc.retry
        self._mark_done(es, start, *done)
        logger.info(
            "eso synced es=%s/%s secret=%s keys=%d reason=%s",
            namespace,
            name,
            secret_name,
            len(data),
            done[0],
        )
        return self._requeue_result(es), False

    def _sync_nothing(self, es: Obj, existing: Obj | None, secret_name: str, start: float) -> Outcome:
        """The provider returned no data: delete the Secret (``Delete``) or keep it (``Retain``)."""
        namespace, _ = object_key(es)
        target = _spec(es).get("target") or {}
        if (target.get("deletionPolicy") or "Retain") == "Retain":
            self._mark_done(es, start, REASON_SYNCED, MSG_SYNCED_RETAIN)
            return self._requeue_result(es), False
        creation = target.get("creationPolicy") or "Owner"
        if creation != "Owner":
            detail = f"unable to delete secret {secret_name}: creationPolicy={creation} is not Owner"
            self._mark_failed(es, MSG_ERROR_DELETE_SECRET, detail)
            return None, False
        if existing is not None:
            try:
                self._delete("Secret", namespace, secret_name)
            except ApiError as exc:
                if exc.code != 404:
                    self._mark_failed(es, MSG_ERROR_DELETE_SECRET, exc.message)
                    return None, True
            self.recorder.record(es, "Normal", "Deleted", EVENT_DELETED, COMPONENT)
        self._mark_done(es, start, REASON_DELETED, MSG_DELETED)
        return self._requeue_result(es), False

    def _write_by_policy(
        self, es: Obj, existing: Obj | None, data: dict[str, bytes], secret_name: str
    ) -> tuple[str, str]:
        """Write the Secret as ``creationPolicy`` says; the Ready reason and message to set."""
        creation = (_spec(es).get("target") or {}).get("creationPolicy") or "Owner"
        if creation == "None":
            return REASON_SYNCED, MSG_SYNCED
        if creation == "Merge":
            if existing is None:
                return REASON_MISSING, MSG_MISSING
            self._update_secret(es, existing, data, secret_name)
            return REASON_SYNCED, MSG_SYNCED
        if creation == "Owner":
            try:
                self._delete_orphans(es, secret_name)
            except ApiError as exc:
                raise _SecretWriteError(MSG_ERROR_DELETE_ORPHANED, exc.message, retry=True) from exc
        if existing is None:
            self._create_secret(es, data, secret_name)
        else:
            self._update_secret(es, existing, data, secret_name)
        return REASON_SYNCED, MSG_SYNCED

    def _should_refresh(self, es: Obj, now: float) -> bool:
        """``shouldRefresh`` / ``shouldRefreshPeriodic``."""
        status = es.get("status") or {}
        synced = str(status.get("syncedResourceVersion") or "")
        refreshed = _refresh_time(es)
        policy = _spec(es).get("refreshPolicy")
        if policy == "CreatedOnce":
            return not synced or refreshed is None
        if policy == "OnChange":
            if not synced or refreshed is None:
                return True
            return synced != resource_version(es["metadata"])
        interval = _refresh_interval(es)
        if interval <= 0 and synced:
            return False
        if synced != resource_version(es["metadata"]):
            return True
        if refreshed is None or refreshed > now:
            return True
        return refreshed + interval < now  # syncWindows are not evaluated: always allowed

    def _requeue_result(self, es: Obj) -> Result | None:
        """``getRequeueResult``."""
        interval = _refresh_interval(es)
        if interval <= 0:
            return None
        refreshed = _refresh_time(es)
        if refreshed is None:
            return Result(requeue_after=interval)
        since = self._clock() - refreshed
        if since < 0:
            return Result(requeue=True)
        if since < interval:
            return Result(requeue_after=interval - since)
        return Result(requeue=True)

    def _mark_done(self, es: Obj, start: float, reason: str, message: str) -> None:
        status = _status(es)
        _set_condition(status, READY, "True", reason, message, now=self._clock())
        status["refreshTime"] = rfc3339(start)
        status["syncedResourceVersion"] = resource_version(es["metadata"])

    def _mark_failed(self, es: Obj, message: str, detail: str) -> None:
        self.recorder.record(es, "Warning", "UpdateFailed", detail, COMPONENT)
        status = _status(es)
        _set_condition(status, READY, "False", REASON_SYNCED_ERROR, message, now=self._clock())

    def _write_status(self, es: Obj, before: Obj) -> bool:
        """``r.Status().Update`` when the status changed; True on a 409 Conflict."""
        after = _go_status(es.get("status"))
        if after == before:
            return False
        es["status"] = after
        resource_type = self._type(ES_KIND)
        namespace, name = object_key(es)
        try:
            self._store.update(
                resource_type, resource_type.preferred_version, namespace, name, es, subresource="status"
            )
        except ApiError as exc:
            if exc.code == 409:
                logger.debug("eso status conflict es=%s/%s", namespace, name)
                return True
            logger.warning("eso status update failed es=%s/%s error=%s", namespace, name, exc)
            return True
        return False

    # -- reading the provider -------------------------------------------------------------

    def _provider_data(self, es: Obj) -> dict[str, bytes]:
        """``GetProviderSecretData``: every ``dataFrom`` item, then every ``data`` item."""
        spec = _spec(es)
        deletion = (spec.get("target") or {}).get("deletionPolicy") or "Retain"
        data: dict[str, bytes] = {}
        for index, item in enumerate(spec.get("dataFrom") or []):
            try:
                found = self._data_from(es, index, item)
            except ProviderError as exc:
                if exc.missing and deletion != "Retain":
                    message = f"secret does not exist at provider using spec.dataFrom[{index}]"
                    self.recorder.record(es, "Normal", "MissingProviderSecret", message, COMPONENT)
                    continue
                raise
            data.update(found)
        for index, item in enumerate(spec.get("data") or []):
            remote = item.get("remoteRef") or {}
            try:
                data[str(item.get("secretKey", ""))] = self._data_item(es, item)
            except ProviderError as exc:
                if exc.missing and deletion != "Retain":
                    message = (
                        f"secret does not exist at provider using spec.dataFrom[{index}] "
                        f"(key={remote.get('key', '')})"
                    )  # sic: ESO's eventMissingProviderSecretKey says dataFrom for data items too
                    self.recorder.record(es, "Normal", "MissingProviderSecret", message, COMPONENT)
                    continue
                raise exc.wrap(
                    f"error processing spec.data[{index}] (key: {remote.get('key', '')}), err: "
                ) from exc
        return data

    def _data_from(self, es: Obj, index: int, item: Obj) -> dict[str, bytes]:
        source = item.get("sourceRef") or {}
        if item.get("find") is not None:
            where = "find"
        elif item.get("extract") is not None:
            where = "extract"
        elif source.get("generatorRef"):
            raise ProviderError(
                f"error processing spec.dataFrom[{index}].sourceRef.generatorRef, err: "
                "generators are not served by the Kubernetes twin"
            )
        else:
            return {}
        try:
            provider = self._provider(es, source.get("storeRef"))
            if item.get("rewrite"):
                raise ProviderError("rewrite is not implemented by the Kubernetes twin's ESO")
            if where == "find":
                found = provider.get_all_secrets(item["find"])
            else:
                found = provider.get_secret_map(item["extract"])
        except ProviderError as exc:
            raise exc.wrap(f"error processing spec.dataFrom[{index}].{where}, err: ") from exc
        return found

    def _data_item(self, es: Obj, item: Obj) -> bytes:
        source = item.get("sourceRef")
        store_ref = (source.get("storeRef") or {}) if isinstance(source, dict) else None
        provider = self._provider(es, store_ref)
        remote = item.get("remoteRef") or {}
        value = provider.get_secret(remote)
        strategy = str(remote.get("decodingStrategy") or "")
        try:
            value = decode(strategy, value)
        except ValueError as exc:
            raise ProviderError(f"error applying decoding strategy {strategy} to data: {exc}") from exc
        if remote.get("nullBytePolicy") == "Fail" and b"\x00" in value:
            raise ProviderError(null_byte_message(str(item.get("secretKey", ""))))
        return value

    def _provider(self, es: Obj, store_ref: Obj | None) -> AzureKV:
        """The vault behind the item's store (``client_manager.go`` ``Get``)."""
        namespace, _ = object_key(es)
        ref = store_ref if store_ref is not None else (_spec(es).get("secretStoreRef") or {})
        kind = str(ref.get("kind") or STORE_KIND)
        store_name = str(ref.get("name") or "")
        if kind == CLUSTER_STORE_KIND:
            store = self._get(CLUSTER_STORE_KIND, "", store_name)
            missing = f'could not get ClusterSecretStore "{store_name}", '
        else:
            kind = STORE_KIND
            store = self._get(STORE_KIND, namespace, store_name)
            missing = f'could not get SecretStore "{store_name}", '
        if store is None:
            plural = "clustersecretstores" if kind == CLUSTER_STORE_KIND else "secretstores"
            raise ProviderError(f'{missing}{plural}.{ESO_GROUP} "{store_name}" not found')
        store_spec = _spec(store)
        if store_spec.get("controller") not in (None, "", self.controller_class):
            raise ProviderError("can not reference unmanaged store")
        if kind == CLUSTER_STORE_KIND and not self._namespace_allowed(store, namespace):
            raise ProviderError(
                f'using cluster store "{store_name}" is not allowed from namespace "{namespace}": '
                "denied by spec.condition"
            )
        if self.flood_gate and _condition(store, READY).get("status") != "True":
            raise ProviderError(f'{kind} "{store_name}" is not ready')
        provider = store_spec.get("provider") or {}
        azurekv = provider.get("azurekv")
        if not isinstance(azurekv, dict):
            used = ", ".join(sorted(provider)) or "none"
            raise ProviderError(
                f"the Kubernetes twin's ESO serves the azurekv provider only (store uses {used})"
            )
        url = str(azurekv.get("vaultUrl") or "")
        reader = self._vaults.get(normalise_vault_url(url))
        if reader is None:
            raise ProviderError(
                f"vault {url!r} cannot be reached from the Kubernetes twin (no reader for it)"
            )
        return AzureKV(reader)

    def _namespace_allowed(self, store: Obj, namespace: str) -> bool:
        """``shouldProcessSecret``: the ClusterSecretStore's ``spec.conditions``."""
        conditions = _spec(store).get("conditions") or []
        if not conditions:
            return True
        namespace_obj = self._get("Namespace", "", namespace) or {}
        labels = _labels(namespace_obj)
        for condition in conditions:
            selectors = []
            if condition.get("namespaceSelector") is not None:
                selectors.append(condition["namespaceSelector"])
            selectors.extend(
                {"matchLabels": {"kubernetes.io/metadata.name": name}}
                for name in condition.get("namespaces") or []
            )
            if any(_selector_matches(selector, labels) for selector in selectors):
                return True
            if any(go_search(pattern, namespace) for pattern in condition.get("namespaceRegexes") or []):
                return True
        return False

    def _uses_unmanaged_store(self, es: Obj) -> bool:
        """``shouldSkipUnmanagedStore``: a store of another controller class is referenced."""
        spec = _spec(es)
        refs: list[Obj] = []
        if (spec.get("secretStoreRef") or {}).get("name"):
            refs.append(spec["secretStoreRef"])
        for item in spec.get("data") or []:
            if isinstance(item.get("sourceRef"), dict):
                refs.append(item["sourceRef"].get("storeRef") or {})
        for item in spec.get("dataFrom") or []:
            store_ref = (item.get("sourceRef") or {}).get("storeRef")
            if isinstance(store_ref, dict):
                refs.append(store_ref)
        namespace, _ = object_key(es)
        for ref in refs:
            kind = ref.get("kind") or STORE_KIND
            if kind == STORE_KIND:
                store = self._get(STORE_KIND, namespace, str(ref.get("name") or ""))
            elif kind == CLUSTER_STORE_KIND:
                store = self._get(CLUSTER_STORE_KIND, "", str(ref.get("name") or ""))
            else:
                raise ProviderError(f"unsupported secret store kind: {kind}")
            if store is None:
                continue
            if _spec(store).get("controller") not in (None, "", self.controller_class):
                return True
        return False

    # -- writing the Secret ---------------------------------------------------------------

    def _create_secret(self, es: Obj, data: dict[str, bytes], secret_name: str) -> None:
        namespace, _ = object_key(es)
        secret: Obj = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": secret_name, "namespace": namespace, "labels": {}, "annotations": {}},
            "data": {},
        }
        written = self._mutate(es, secret, data)
        secret_type = self._type("Secret")
        self._store.create(secret_type, "v1", namespace, secret)
        self._remember(es, written)
        _status(es)["binding"] = {"name": secret_name}
        self.recorder.record(es, "Normal", "Created", EVENT_CREATED, COMPONENT)

    def _update_secret(self, es: Obj, existing: Obj, data: dict[str, bytes], secret_name: str) -> None:
        namespace, _ = object_key(es)
        _status(es)["binding"] = {"name": secret_name}
        updated = copy.deepcopy(existing)
        try:
            written = self._mutate(es, updated, data)
        except _SecretWriteError as exc:
            raise _SecretWriteError(
                exc.condition, f"unable to mutate secret {secret_name}: {exc}", retry=exc.retry
            ) from exc
        if updated == existing:
            self._remember(es, written)
            return
        secret_type = self._type("Secret")
        if existing.get("immutable"):
            metadata_only = copy.deepcopy(existing)
            metadata_only["metadata"] = copy.deepcopy(updated["metadata"])
            data_changed = metadata_only != updated
            if metadata_only != existing:
                self._store.update(secret_type, "v1", namespace, secret_name, metadata_only)
            else:
                data_changed = True
            if data_changed:
                raise _SecretWriteError(
                    MSG_ERROR_UPDATE_IMMUTABLE,
                    f"unable to update secret {secret_name}: secret is immutable",
                    retry=False,
                )
        self._store.update(secret_type, "v1", namespace, secret_name, updated)
        self._remember(es, written)
        self.recorder.record(es, "Normal", "Updated", EVENT_UPDATED, COMPONENT)

    def _mutate(self, es: Obj, secret: Obj, data_map: dict[str, bytes]) -> _Written:
        """ESO's ``mutationFunc``: template (or the ES's own metadata), data, ownership, hash."""
        target = _spec(es).get("target") or {}
        metadata = secret.setdefault("metadata", {})
        labels: dict[str, str] = dict(metadata.get("labels") or {})
        annotations: dict[str, str] = dict(metadata.get("annotations") or {})
        data = _decoded(secret)
        written = _Written()
        if target.get("immutable"):
            secret["immutable"] = True
        if not metadata.get("uid") or not target.get("immutable"):
            previous = self._written_by(es)
            for key in previous.data:
                data.pop(key, None)
            for key in previous.labels:
                labels.pop(key, None)
            for key in previous.annotations:
                annotations.pop(key, None)
            data = self._apply_template(
                es, secret, data_map, labels=labels, annotations=annotations, data=data, written=written
            )
        self._apply_ownership(es, secret, labels, written)
        labels[LABEL_MANAGED] = LABEL_MANAGED_VALUE
        annotations[ANNOTATION_DATA_HASH] = object_hash(data)
        written.labels.add(LABEL_MANAGED)
        written.annotations.add(ANNOTATION_DATA_HASH)
        metadata["labels"] = labels
        metadata["annotations"] = annotations
        secret["data"] = {key: base64.b64encode(value).decode("ascii") for key, value in data.items()}
        return written

    def _apply_template(
        self,
        es: Obj,
        secret: Obj,
        data_map: dict[str, bytes],
        *,
        labels: dict[str, str],
        annotations: dict[str, str],
        data: dict[str, bytes],
        written: _Written,
    ) -> dict[str, bytes]:
        """``ApplyTemplate`` without Go templates: metadata, type, data keys."""
        target = _spec(es).get("target") or {}
        template = target.get("template")
        if isinstance(template, dict) and (template.get("data") or template.get("templateFrom")):
            raise _SecretWriteError(
                MSG_ERROR_UPDATE_SECRET,
                "could not apply template: Go templates (template.data, templateFrom) are not "
                "implemented by the Kubernetes twin's ESO",
                retry=True,
            )
        if isinstance(template, dict):
            template_metadata = template.get("metadata") or {}
            copied_labels = dict(template_metadata.get("labels") or {})
            copied_annotations = dict(template_metadata.get("annotations") or {})
        else:
            copied_labels = dict(_labels(es))
            copied_annotations = dict(es["metadata"].get("annotations") or {})
        labels.update(copied_labels)
        annotations.update(copied_annotations)
        written.labels.update(copied_labels)
        written.annotations.update(copied_annotations)
        if isinstance(template, dict):
            finalizers = secret["metadata"].setdefault("finalizers", [])
            for finalizer in (template.get("metadata") or {}).get("finalizers") or []:
                if finalizer not in finalizers:
                    finalizers.append(finalizer)
            if not finalizers:
                secret["metadata"].pop("finalizers")
        if target.get("creationPolicy") not in ("Merge", "CreateOrMerge"):
            data = {}
        if isinstance(template, dict) and template.get("type"):
            secret["type"] = template["type"]
        data.update(data_map)
        written.data.update(data_map)
        return data

    def _apply_ownership(self, es: Obj, secret: Obj, labels: dict[str, str], written: _Written) -> None:
        """``applyOwnership``: controller reference and ``created-by`` label for Owner."""
        namespace, name = object_key(es)
        creation = (_spec(es).get("target") or {}).get("creationPolicy") or "Owner"
        metadata = secret["metadata"]
        references: list[Obj] = list(metadata.get("ownerReferences") or [])
        controller = next((ref for ref in references if ref.get("controller")), None)
        owner_is_es = controller is not None and _group_kind(controller) == (ESO_GROUP, ES_KIND)
        owner_is_this = owner_is_es and controller is not None and controller.get("name") == name
        if owner_is_es and not owner_is_this and controller is not None:
            raise _SecretWriteError(
                MSG_ERROR_IS_OWNED,
                f"secret is owned by another ExternalSecret: {controller.get('name')}",
                retry=False,
            )
        es_type = self._type(ES_KIND)
        mine = {
            "apiVersion": es_type.api_version(),
            "kind": ES_KIND,
            "name": name,
            "uid": es["metadata"].get("uid", ""),
            "controller": True,
            "blockOwnerDeletion": True,
        }
        if creation == "Owner":
            if controller is not None and not owner_is_this:
                raise _SecretWriteError(
                    MSG_ERROR_BECOME_OWNER,
                    "could not set controller reference on secret: Object "
                    f"{namespace}/{metadata.get('name')} is already owned by another "
                    f"{controller.get('kind')} controller {controller.get('name')}",
                    retry=False,
                )
            references = [
                ref
                for ref in references
                if _group_kind(ref) != (ESO_GROUP, ES_KIND) or ref.get("name") != name
            ]
            references.append(mine)
            labels[LABEL_OWNER] = object_hash(f"{namespace}/{name}")
            written.labels.add(LABEL_OWNER)
        else:
            if owner_is_this:
                references = [ref for ref in references if ref is not controller]
            labels.pop(LABEL_OWNER, None)
        if references:
            metadata["ownerReferences"] = references
        else:
            metadata.pop("ownerReferences", None)

    def _delete_orphans(self, es: Obj, secret_name: str) -> None:
        """``deleteOrphanedSecrets``: Secrets this ES created under another target name."""
        namespace, name = object_key(es)
        owner = object_hash(f"{namespace}/{name}")
        for secret in self._list("Secret", namespace):
            if _labels(secret).get(LABEL_OWNER) == owner and secret["metadata"]["name"] != secret_name:
                try:
                    self._delete("Secret", namespace, secret["metadata"]["name"])
                except ApiError as exc:
                    if exc.code != 404:
                        raise
                self.recorder.record(es, "Normal", "Deleted", EVENT_DELETED_ORPHANED, COMPONENT)

    def _finalize(self, es: Obj) -> Result | None:
        """A deleted ES: ``cleanupManagedSecrets``, then drop the finalizer."""
        namespace, name = object_key(es)
        target = _spec(es).get("target") or {}
        try:
            if target.get("deletionPolicy") == "Delete" and not target.get("manifest"):
                secret = self._get("Secret", namespace, _target_name(es))
                if secret is not None and _controlled_by(secret, es):
                    self._delete("Secret", namespace, secret["metadata"]["name"])
            if FINALIZER in (es["metadata"].get("finalizers") or []):
                self._patch(ES_KIND, es, lambda obj: _remove_finalizer(obj, FINALIZER))
        except ApiError as exc:
            if exc.code == 404:
                return None
            logger.warning("eso cleanup failed es=%s/%s error=%s", namespace, name, exc)
            return Result(requeue=True)
        return None

    def _collect_garbage(self, key: EsKey, current_uid: str | None = None) -> None:
        """Kubernetes' garbage collector for the Secrets a deleted ES owned.

        ``current_uid``: an ES of the same name exists again; collect only for an older one.
        """
        with self._lock:
            uid = self._gone.get(key, "")
            if not uid or uid == current_uid:
                return
            del self._gone[key]
            if current_uid is None:
                self._written.pop(key, None)
        secret_type = self._type("Secret")
        for secret in self._list("Secret", key[0]):
            references = secret["metadata"].get("ownerReferences") or []
            remaining = [ref for ref in references if ref.get("uid") != uid]
            if len(remaining) == len(references):
                continue
            try:
                if remaining:
                    secret["metadata"]["ownerReferences"] = remaining
                    self._store.update(secret_type, "v1", key[0], secret["metadata"]["name"], secret)
                else:
                    self._delete("Secret", key[0], secret["metadata"]["name"])
            except ApiError as exc:
                logger.debug("gc skipped secret=%s/%s error=%s", key[0], secret["metadata"]["name"], exc)

    def _written_by(self, es: Obj) -> _Written:
        with self._lock:
            return copy.deepcopy(self._written.get(object_key(es), _Written()))

    def _remember(self, es: Obj, written: _Written) -> None:
        with self._lock:
            self._written[object_key(es)] = written

    # -- the store reconcile ---------------------------------------------------------------

    def _reconcile_store(self, key: StoreKey) -> Result | None:
        kind, namespace, name = key
        store = self._get(kind, namespace, name)
        if store is None:
            return None
        if _spec(store).get("controller") not in (None, "", self.controller_class):
            return None
        provider = _spec(store).get("provider") or {}

        def validated(current: Obj) -> Obj:
            updated = copy.deepcopy(current)
            status = updated.setdefault("status", {})
            if isinstance(provider.get("azurekv"), dict):
                status["capabilities"] = "ReadWrite"
                _set_condition(
                    status, READY, "True", REASON_STORE_VALID, MSG_STORE_VALIDATED, now=self._clock()
                )
            else:
                _set_condition(
                    status,
                    READY,
                    "False",
                    REASON_INVALID_PROVIDER,
                    MSG_UNABLE_CREATE_CLIENT,
                    now=self._clock(),
                )
            return updated

        try:
            self._patch(kind, store, validated, subresource="status")
        except ApiError as exc:
            if exc.code == 404:
                return None
            raise
        if isinstance(provider.get("azurekv"), dict):
            self.recorder.record(store, "Normal", REASON_STORE_VALID, MSG_STORE_VALIDATED, COMPONENT)
        else:
            used = ", ".join(sorted(provider)) or "none"
            message = f"the Kubernetes twin's ESO serves the azurekv provider only (store uses {used})"
            self.recorder.record(store, "Warning", REASON_INVALID_PROVIDER, message, COMPONENT)
        return None

    # -- store access -----------------------------------------------------------------------

    def _patch(
        self, kind: str, obj: Obj, change: Callable[[Obj], Obj | None], *, subresource: str | None = None
    ) -> Obj:
        """Apply ``change`` to the current object under the store's lock (an unconditional patch)."""
        resource_type = self._type(kind)
        namespace, name = object_key(obj)

        def apply(current: Obj) -> Obj:
            updated = copy.deepcopy(current)
            returned = change(updated)
            return returned if returned is not None else updated

        result = self._store.patch(
            resource_type, resource_type.preferred_version, namespace, name, apply, subresource=subresource
        )
        return result.obj

    def _delete(self, kind: str, namespace: str, name: str) -> None:
        resource_type = self._type(kind)
        self._store.delete(resource_type, resource_type.preferred_version, namespace, name)


# -- helpers ----------------------------------------------------------------------------------


def _spec(obj: Obj) -> Obj:
    spec = obj.get("spec")
    return spec if isinstance(spec, dict) else {}


def _status(obj: Obj) -> Obj:
    """The object's status, created empty if absent or null."""
    status = obj.get("status")
    if not isinstance(status, dict):
        status = obj["status"] = {}
    return status


def _labels(obj: Obj) -> dict[str, str]:
    return dict(obj.get("metadata", {}).get("labels") or {})


def _target_name(es: Obj) -> str:
    target = _spec(es).get("target") or {}
    return str(target.get("name") or es.get("metadata", {}).get("name", ""))


def _store_key(store: Obj) -> StoreKey:
    namespace, name = object_key(store)
    return str(store.get("kind", "")), namespace, name


def _refresh_interval(es: Obj) -> float:
    text = _spec(es).get("refreshInterval")
    try:
        return parse_duration(str(text if text is not None else DEFAULT_REFRESH_INTERVAL))
    except ValueError:
        return parse_duration(DEFAULT_REFRESH_INTERVAL)


def _refresh_time(es: Obj) -> float | None:
    text = (es.get("status") or {}).get("refreshTime")
    return parse_rfc3339(text) if isinstance(text, str) and text else None


def _condition(obj: Obj, condition_type: str) -> Obj:
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition.get("type") == condition_type:
            return dict(condition)
    return {}


def _set_condition(
    status: Obj, condition_type: str, value: str, reason: str, message: str, *, now: float
) -> None:
    """``SetExternalSecretCondition``: keep ``lastTransitionTime`` unless the status flips."""
    conditions: list[Obj] = list(status.get("conditions") or [])
    current = next((c for c in conditions if c.get("type") == condition_type), None)
    if (
        current is not None
        and current.get("status") == value
        and current.get("reason", "") == reason
        and current.get("message", "") == message
    ):
        return
    transition = rfc3339(now)
    if current is not None and current.get("status") == value and current.get("lastTransitionTime"):
        transition = current["lastTransitionTime"]
    condition: Obj = {"type": condition_type, "status": value}
    if reason:
        condition["reason"] = reason
    if message:
        condition["message"] = message
    condition["lastTransitionTime"] = transition
    status["conditions"] = [c for c in conditions if c.get("type") != condition_type] + [condition]


def _go_status(status: Obj | None) -> Obj:
    """An ES status as ESO's Go struct serializes it (``refreshTime`` null, ``binding`` {})."""
    status = status if isinstance(status, dict) else {}
    result: Obj = {"refreshTime": status.get("refreshTime") or None}
    if status.get("syncedResourceVersion"):
        result["syncedResourceVersion"] = status["syncedResourceVersion"]
    if status.get("conditions"):
        result["conditions"] = copy.deepcopy(status["conditions"])
    binding = (status.get("binding") or {}).get("name")
    result["binding"] = {"name": binding} if binding else {}
    return result


def _secret_valid(existing: Obj | None, es: Obj) -> bool:
    """``isSecretValid``."""
    if ((_spec(es).get("target") or {}).get("creationPolicy") or "Owner") == "Orphan":
        return True
    if existing is None:
        return False
    if _labels(existing).get(LABEL_MANAGED) != LABEL_MANAGED_VALUE:
        return False
    annotations = existing["metadata"].get("annotations") or {}
    return bool(annotations.get(ANNOTATION_DATA_HASH) == object_hash(_decoded(existing)))


def _decoded(secret: Obj) -> dict[str, bytes]:
    return {key: base64.b64decode(value or "") for key, value in (secret.get("data") or {}).items()}


def _add_finalizer(obj: Obj, finalizer: str) -> None:
    finalizers = obj["metadata"].setdefault("finalizers", [])
    if finalizer not in finalizers:
        finalizers.append(finalizer)


def _remove_finalizer(obj: Obj, finalizer: str) -> None:
    finalizers = [f for f in obj["metadata"].get("finalizers") or [] if f != finalizer]
    if finalizers:
        obj["metadata"]["finalizers"] = finalizers
    else:
        obj["metadata"].pop("finalizers", None)


def _add_managed_label(secret: Obj) -> None:
    secret["metadata"].setdefault("labels", {})[LABEL_MANAGED] = LABEL_MANAGED_VALUE


def _group_kind(reference: Obj) -> tuple[str, str]:
    group = str(reference.get("apiVersion", "")).rpartition("/")[0]
    return group, str(reference.get("kind", ""))


def _controlled_by(secret: Obj, es: Obj) -> bool:
    uid = es["metadata"].get("uid")
    return any(
        ref.get("controller") and ref.get("uid") == uid
        for ref in secret["metadata"].get("ownerReferences") or []
    )


def _selector_matches(selector: Obj, labels: Mapping[str, str]) -> bool:
    """A ``metav1.LabelSelector`` (an empty one matches everything)."""
    requirements = [
        Requirement(key, "=", (str(value),)) for key, value in (selector.get("matchLabels") or {}).items()
    ]
    operators = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!exists"}
    for expression in selector.get("matchExpressions") or []:
        operator = operators.get(str(expression.get("operator")))
        if operator is None:
            return False
        requirements.append(
            Requirement(str(expression.get("key")), operator, tuple(expression.get("values") or ()))
        )
    return all(requirement.matches(labels) for requirement in requirements)
