"""The cluster's state: every object, one global resourceVersion, and the change feed.

Semantics follow https://kubernetes.io/docs/reference/using-api/api-concepts/:

- **resourceVersion** is one counter for the whole store (etcd's revision): every write that
  changes something takes the next value; a write that changes nothing (same content after
  defaulting) is a no-op that keeps the version and notifies nobody;
- **optimistic concurrency**: an update or patch whose ``metadata.resourceVersion`` is not
  the stored one fails with 409 Conflict; custom resources refuse a PUT without one (422),
  built-ins accept it unconditionally; patches without one are unconditional;
- **lists** are sorted by key (``namespace/name``, as etcd returns them) and paginated with
  ``limit`` and an opaque ``continue`` token carrying the list's resourceVersion and the next
  key; ``remainingItemCount`` is set when no selector filtered the list;
- **deletion** honours ``metadata.finalizers``: the object gets a ``deletionTimestamp`` and
  stays until an update removes the last finalizer; deleting a Namespace deletes what is in
  it at once (the namespace controller's work, without the Terminating phase);
- **the change feed**: callbacks given to :meth:`ObjectStore.subscribe` get
  ``("ADDED" | "MODIFIED" | "DELETED", object)`` after each committed write, in commit order,
  outside the store lock (so a callback may write to the store). They run on the writing
  thread, or on whichever thread is already delivering: a controller should queue the event
  and work on its own thread.

Every method returns deep copies; nothing a caller holds aliases the store. In-process
controllers use this class directly (no auth); HTTP requests reach it through
:mod:`twins.kubernetes.routes`.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import logging
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from twins.kubernetes import errors, strategy
from twins.kubernetes.kinds import Obj, Registry, ResourceType
from twins.kubernetes.selectors import FieldGetter, FieldRequirement, Requirement, fields_match, labels_match
from twins.kubernetes.validation import Validator

logger = logging.getLogger(__name__)

ADDED, MODIFIED, DELETED = "ADDED", "MODIFIED", "DELETED"
INITIAL_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
NAME_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # apiserver's names.SimpleNameGenerator

WatchCallback = Callable[[str, Obj], None]
Key = tuple[str, str, str, str]  # group, plural, namespace ("" if cluster-scoped), name


@dataclass
class WriteResult:
    """A write's outcome: the object as the client sees it, warnings, and what happened."""

    obj: Obj
    warnings: list[str] = field(default_factory=list)
    deleted: bool = False  # the object is gone (not merely marked for deletion)


@dataclass
class ListResult:
    """One page of a list."""

    items: list[Obj]
    resource_version: str
    continue_token: str = ""
    remaining: int | None = None


@dataclass(frozen=True)
class ListQuery:
    """Selectors and paging of a list request."""

    labels: tuple[Requirement, ...] = ()
    fields: tuple[tuple[FieldRequirement, FieldGetter], ...] = ()
    limit: int = 0
    continue_token: str = ""


class ObjectStore:
    """Thread-safe in-memory object store with Kubernetes write semantics."""

    def __init__(
        self,
        registry: Registry,
        validator: Validator,
        clock: Callable[[], float] = time.time,
        namespaces: Iterable[str] = INITIAL_NAMESPACES,
    ) -> None:
        self.registry = registry
        self.validator = validator
        self._clock = clock
        self._lock = threading.RLock()
        self._objects: dict[Key, Obj] = {}
        self._revision = 0
        self._subscribers: list[WatchCallback] = []
        self._pending: list[tuple[str, Obj]] = []
        self._delivering = threading.Lock()
        namespace_type = registry.by_kind("Namespace")
        for name in namespaces:
            self.create(namespace_type, "v1", "", {"metadata": {"name": name}})

    # -- reads ------------------------------------------------------------------------

    @property
    def resource_version(self) -> str:
        """The store's current resourceVersion (the last write's)."""
        with self._lock:
            return str(self._revision)

    def get(self, resource_type: ResourceType, version: str, namespace: str, name: str) -> Obj:
        """One object at ``version``; 404 ``ApiError`` if absent."""
        with self._lock:
            stored = self._objects.get(_key(resource_type, namespace, name))
            if stored is None:
                raise errors.not_found(resource_type, name)
            return _present(resource_type, version, stored)

    def list_page(
        self, resource_type: ResourceType, version: str, namespace: str | None, query: ListQuery = ListQuery()
    ) -> ListResult:
        """The objects of a type in ``namespace`` (``None``: everywhere), filtered and paginated."""
        relative = _relative_key if namespace is None and resource_type.namespaced else _name_key
        with self._lock:
            revision, start = _parse_continue(query.continue_token, self._revision)
            candidates = sorted(
                (
                    (relative(key), stored)
                    for key, stored in self._objects.items()
                    if key[:2] == (resource_type.group, resource_type.plural)
                    and (namespace is None or key[2] == namespace)
                ),
                key=lambda entry: entry[0],
            )
            matching = [
                (position, stored)
                for position, stored in candidates
                if position >= start
                and labels_match(query.labels, stored)
                and fields_match(query.fields, stored)
            ]
            page = matching[: query.limit] if query.limit > 0 else matching
            items = [_present(resource_type, version, stored, in_list=True) for _, stored in page]
        result = ListResult(items, str(revision))
        if query.limit > 0 and len(matching) > query.limit:
            result.continue_token = _make_continue(revision, page[-1][0] + "\x00")
            if not query.labels and not query.fields:
                result.remaining = len(matching) - query.limit
        return result

    def objects(self, resource_type: ResourceType) -> list[Obj]:
        """Every object of a type, sorted by namespace and name, at its preferred version."""
        with self._lock:
            stored = sorted(
                (
                    obj
                    for key, obj in self._objects.items()
                    if key[:2] == (resource_type.group, resource_type.plural)
                ),
                key=lambda obj: (obj["metadata"].get("namespace", ""), obj["metadata"]["name"]),
            )
            return [_present(resource_type, resource_type.preferred_version, obj) for obj in stored]

    # -- writes -----------------------------------------------------------------------

    def create(
        self,
        resource_type: ResourceType,
        version: str,
        namespace: str,
        body: Obj,
        *,
        dry_run: bool = False,
        field_validation: str = "Warn",
    ) -> WriteResult:
        """POST: store a new object (201 semantics); 409 if it exists, 404 if the namespace does not."""
        metadata = body.get("metadata")
        if not isinstance(metadata, dict):
            raise errors.invalid_object(
                resource_type, "", [errors.required("metadata.name", "name or generateName is required")]
            )
        if metadata.get("resourceVersion"):
            raise errors.ApiError(500, "", "resourceVersion should not be set on objects to be created")
        check_identity(resource_type, body, namespace, None)
        obj = copy.deepcopy(body)
        obj["metadata"]["namespace"] = namespace
        if not resource_type.namespaced:
            obj["metadata"].pop("namespace")
        with self._lock:
            if not obj["metadata"].get("name") and obj["metadata"].get("generateName"):
                obj["metadata"]["name"] = self._generate_name(
                    resource_type, namespace, obj["metadata"]["generateName"]
                )
            prepared = strategy.prepare_for_create(resource_type, obj)
            admitted = self.validator.admit(
                resource_type, version, prepared, field_validation=field_validation
            )
            name = admitted.obj["metadata"]["name"]
            if (
                resource_type.namespaced
                and _key(self.registry.by_kind("Namespace"), "", namespace) not in self._objects
            ):
                raise errors.namespace_not_found(namespace)
            key = _key(resource_type, namespace, name)
            if key in self._objects:
                raise errors.already_exists(resource_type, name)
            stored = admitted.obj
            stored["apiVersion"], stored["kind"] = resource_type.api_version(), resource_type.kind
            stored["metadata"]["uid"] = str(uuid.uuid4())
            stored["metadata"]["creationTimestamp"] = self._now()
            if not dry_run:
                self._commit(key, stored, ADDED)
        self._deliver()
        return WriteResult(_present(resource_type, version, stored), admitted.warnings)

    def update(
        self,
        resource_type: ResourceType,
        version: str,
        namespace: str,
        name: str,
        body: Obj,
        *,
        subresource: str | None = None,
        dry_run: bool = False,
        field_validation: str = "Warn",
        conditional: bool = True,
    ) -> WriteResult:
        """PUT: replace the object (or its status) if ``metadata.resourceVersion`` is current.

        ``conditional=False`` is a patch's update: a body without a resourceVersion is accepted
        even for custom resources.
        """
        check_identity(resource_type, body, namespace, name)
        with self._lock:
            result = self._update(
                resource_type,
                version,
                namespace,
                name,
                body,
                subresource=subresource,
                dry_run=dry_run,
                field_validation=field_validation,
                conditional=conditional,
            )
        self._deliver()
        return result

    def patch(
        self,
        resource_type: ResourceType,
        version: str,
        namespace: str,
        name: str,
        apply: Callable[[Obj], Obj],
        *,
        subresource: str | None = None,
        dry_run: bool = False,
        field_validation: str = "Warn",
    ) -> WriteResult:
        """PATCH: ``apply`` the patch to the current object and store the result as an update."""
        with self._lock:
            current = self.get(resource_type, version, namespace, name)
            patched = apply(current)
            if not isinstance(patched, dict):
                raise errors.bad_request("the patched object is not a JSON object")
            check_identity(resource_type, patched, namespace, name)
            result = self._update(
                resource_type,
                version,
                namespace,
                name,
                patched,
                subresource=subresource,
                dry_run=dry_run,
                field_validation=field_validation,
                conditional=False,
            )
        self._deliver()
        return result

    def delete(
        self,
        resource_type: ResourceType,
        version: str,
        namespace: str,
        name: str,
        *,
        preconditions: Obj | None = None,
        dry_run: bool = False,
    ) -> WriteResult:
        """DELETE: remove the object, or mark it for deletion while it has finalizers."""
        with self._lock:
            key = _key(resource_type, namespace, name)
            current = self._objects.get(key)
            if current is None:
                raise errors.not_found(resource_type, name)
            _check_preconditions(resource_type, current, preconditions or {})
            if dry_run:
                return WriteResult(_present(resource_type, version, current))
            if current["metadata"].get("finalizers"):
                marked = copy.deepcopy(current)
                marked["metadata"].setdefault("deletionTimestamp", self._now())
                marked["metadata"].setdefault("deletionGracePeriodSeconds", 0)
                if marked != current:
                    self._commit(key, marked, MODIFIED)
                result = WriteResult(_present(resource_type, version, marked))
            else:
                gone = self._remove(key, current)
                result = WriteResult(_present(resource_type, version, gone), deleted=True)
        self._deliver()
        return result

    def put(self, obj: Obj, *, field_validation: str = "Strict") -> Obj:
        """Seed: create or overwrite ``obj`` as given, status included, bypassing auth.

        Still defaulted, validated (unknown fields refused) and versioned, and watchers see
        it. A namespaced object's namespace (``default`` if unset) is created if missing.
        """
        resource_type, version = self.registry.for_object(
            str(obj.get("apiVersion", "")), str(obj.get("kind", ""))
        )
        seeded = copy.deepcopy(obj)
        metadata = seeded.setdefault("metadata", {})
        metadata.pop("resourceVersion", None)
        namespace = metadata.setdefault("namespace", "default") if resource_type.namespaced else ""
        if not resource_type.namespaced:
            metadata.pop("namespace", None)
        with self._lock:
            if resource_type.namespaced:
                namespace_type = self.registry.by_kind("Namespace")
                if _key(namespace_type, "", namespace) not in self._objects:
                    self._put_locked(
                        namespace_type, "v1", {"metadata": {"name": namespace}}, "", field_validation
                    )
            stored = self._put_locked(resource_type, version, seeded, namespace, field_validation)
        self._deliver()  # outside the lock, as after every write
        return _present(resource_type, version, stored)

    def _put_locked(
        self, resource_type: ResourceType, version: str, seeded: Obj, namespace: str, field_validation: str
    ) -> Obj:
        """Seed one object; the caller holds the lock and delivers the event afterwards."""
        metadata = seeded["metadata"]
        key = _key(resource_type, namespace, str(metadata.get("name", "")))
        old = self._objects.get(key)
        prepared = (
            strategy.prepare_for_create(resource_type, seeded)
            if old is None
            else strategy.prepare_for_update(resource_type, seeded, old, None)
        )
        if "status" in seeded:
            prepared["status"] = copy.deepcopy(seeded["status"])
        elif resource_type.custom:
            prepared.pop("status", None)
        if "generation" in metadata:
            prepared["metadata"]["generation"] = metadata["generation"]
        # old=None: seeding may change what an update may not (a selector, an immutable Secret)
        admitted = self.validator.admit(
            resource_type, version, prepared, None, field_validation=field_validation
        )
        stored = admitted.obj
        stored["apiVersion"], stored["kind"] = resource_type.api_version(), resource_type.kind
        if old is not None and "generation" not in metadata:
            strategy.bump_generation(resource_type, stored, old)
        stored["metadata"]["uid"] = (
            metadata.get("uid") or (old or {}).get("metadata", {}).get("uid") or str(uuid.uuid4())
        )
        stored["metadata"]["creationTimestamp"] = (
            metadata.get("creationTimestamp")
            or (old or {}).get("metadata", {}).get("creationTimestamp")
            or self._now()
        )
        self._commit(key, stored, ADDED if old is None else MODIFIED)
        return stored

    # -- change feed --------------------------------------------------------------------

    def subscribe(self, callback: WatchCallback) -> Callable[[], None]:
        """Call ``callback(event_type, object)`` after every committed write; returns an unsubscribe."""
        with self._lock:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)

        return unsubscribe

    # -- internals ----------------------------------------------------------------------

    def _update(
        self,
        resource_type: ResourceType,
        version: str,
        namespace: str,
        name: str,
        body: Obj,
        *,
        subresource: str | None,
        dry_run: bool,
        field_validation: str,
        conditional: bool,
    ) -> WriteResult:
        key = _key(resource_type, namespace, name)
        current = self._objects.get(key)
        if current is None:
            raise errors.not_found(resource_type, name)
        metadata = _metadata(body)
        sent = metadata.get("resourceVersion")
        if sent and sent != current["metadata"]["resourceVersion"]:
            raise errors.conflict(resource_type, name)
        if not sent and conditional and not resource_type.unconditional_update:
            # Go prints the zero uint64 as 0x0 (%#v)
            unset = errors.FieldError(
                "FieldValueInvalid",
                "metadata.resourceVersion",
                "Invalid value: 0x0: must be specified for an update",
            )
            raise errors.invalid_object(resource_type, name, [unset])
        uid = metadata.get("uid")
        if uid and uid != current["metadata"]["uid"]:
            stored_uid = current["metadata"]["uid"]
            why = f"Precondition failed: UID in precondition: {uid}, UID in object meta: {stored_uid}"
            raise errors.conflict(resource_type, name, why)
        prepared = strategy.prepare_for_update(resource_type, body, current, subresource)
        prepared["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        prepared["metadata"]["uid"] = current["metadata"]["uid"]
        prepared["apiVersion"], prepared["kind"] = resource_type.api_version(), resource_type.kind
        if resource_type.namespaced:
            prepared["metadata"]["namespace"] = namespace
        admitted = self.validator.admit(
            resource_type, version, prepared, current, field_validation=field_validation
        )
        stored = admitted.obj
        strategy.bump_generation(resource_type, stored, current)
        _check_finalizers(resource_type, stored, current)
        if stored == current:
            return WriteResult(_present(resource_type, version, current), admitted.warnings)
        if dry_run:
            return WriteResult(_present(resource_type, version, stored), admitted.warnings)
        self._commit(key, stored, MODIFIED)
        if stored["metadata"].get("deletionTimestamp") and not stored["metadata"].get("finalizers"):
            stored = self._remove(key, stored)
            return WriteResult(_present(resource_type, version, stored), admitted.warnings, deleted=True)
        return WriteResult(_present(resource_type, version, stored), admitted.warnings)

    def _commit(self, key: Key, stored: Obj, event: str) -> None:
        self._revision += 1
        stored["metadata"]["resourceVersion"] = str(self._revision)
        self._objects[key] = stored
        self._pending.append((event, copy.deepcopy(stored)))

    def _remove(self, key: Key, current: Obj) -> Obj:
        if key[:2] == ("", "namespaces"):
            for other in [k for k in self._objects if k[2] == key[3] and k[:2] != ("", "namespaces")]:
                self._remove(other, self._objects[other])
        del self._objects[key]
        self._revision += 1
        gone = copy.deepcopy(current)
        gone["metadata"]["resourceVersion"] = str(self._revision)
        self._pending.append((DELETED, copy.deepcopy(gone)))
        return gone

    def _deliver(self) -> None:
        """Hand pending events to subscribers in commit order, one delivering thread at a time."""
        while True:
            if not self._delivering.acquire(blocking=False):
                return  # the thread delivering now will take ours too
            try:
                while True:
                    with self._lock:
                        if not self._pending:
                            break
                        event, obj = self._pending.pop(0)
                        subscribers = list(self._subscribers)
                    for callback in subscribers:
                        try:
                            callback(event, copy.deepcopy(obj))
                        except Exception:
                            logger.exception("watch callback failed event=%s kind=%s", event, obj.get("kind"))
            finally:
                self._delivering.release()
            with self._lock:
                if not self._pending:
                    return

    def _generate_name(self, resource_type: ResourceType, namespace: str, prefix: str) -> str:
        for _ in range(16):
            name = prefix[:58] + "".join(secrets.choice(NAME_SUFFIX_ALPHABET) for _ in range(5))
            if _key(resource_type, namespace, name) not in self._objects:
                return name
        raise errors.already_exists(resource_type, prefix)

    def _now(self) -> str:
        return datetime.fromtimestamp(self._clock(), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _key(resource_type: ResourceType, namespace: str, name: str) -> Key:
    return (resource_type.group, resource_type.plural, namespace if resource_type.namespaced else "", name)


def _metadata(obj: Obj) -> Obj:
    metadata = obj.get("metadata")
    return metadata if isinstance(metadata, dict) else {}


def _relative_key(key: Key) -> str:
    return f"{key[2]}/{key[3]}"


def _name_key(key: Key) -> str:
    return key[3]


def _present(resource_type: ResourceType, version: str, stored: Obj, *, in_list: bool = False) -> Obj:
    """A copy of a stored object as served at ``version`` (CRDs: conversion strategy ``None``).

    Items of built-in lists carry no ``apiVersion``/``kind``, as the real server's typed lists.
    """
    obj = copy.deepcopy(stored)
    if in_list and not resource_type.custom:
        obj.pop("apiVersion", None)
        obj.pop("kind", None)
        return obj
    obj["apiVersion"] = resource_type.api_version(version)
    obj["kind"] = resource_type.kind
    return {"apiVersion": obj.pop("apiVersion"), "kind": obj.pop("kind"), **obj}


def check_identity(resource_type: ResourceType, obj: Obj, namespace: str, name: str | None) -> None:
    """400 when the body names another object or namespace than the URL (``name=None``: a create)."""
    metadata = _metadata(obj)
    if name is not None and metadata.get("name", name) != name:
        raise errors.bad_request(
            f"the name of the object ({metadata.get('name')}) does not match the name on the URL ({name})"
        )
    if resource_type.namespaced and metadata.get("namespace", namespace) not in ("", namespace):
        raise errors.bad_request(
            "the namespace of the provided object does not match the namespace sent on the request"
        )


def _check_preconditions(resource_type: ResourceType, current: Obj, preconditions: Obj) -> None:
    name = current["metadata"]["name"]
    for field_name, label in (("uid", "UID"), ("resourceVersion", "ResourceVersion")):
        wanted = preconditions.get(field_name)
        actual = current["metadata"].get(field_name)
        if wanted and wanted != actual:
            raise errors.conflict(
                resource_type,
                name,
                f"Precondition failed: {label} in precondition: {wanted}, {label} in object meta: {actual}",
            )


def _check_finalizers(resource_type: ResourceType, new: Obj, old: Obj) -> None:
    if not old["metadata"].get("deletionTimestamp"):
        return
    added = [
        f
        for f in new["metadata"].get("finalizers") or []
        if f not in (old["metadata"].get("finalizers") or [])
    ]
    if added:
        raise errors.invalid_object(
            resource_type,
            new["metadata"]["name"],
            [
                errors.forbidden_field(
                    "metadata.finalizers",
                    "no new finalizers can be added if the object is being deleted, "
                    f"found new finalizers {added}",
                )
            ],
        )


def _make_continue(revision: int, start: str) -> str:
    token = json.dumps({"v": "meta.k8s.io/v1", "rv": revision, "start": start}, separators=(",", ":"))
    return base64.urlsafe_b64encode(token.encode("utf-8")).decode("ascii").rstrip("=")


def _parse_continue(token: str, revision: int) -> tuple[int, str]:
    """(list resourceVersion, first key) of a continue token; no token: (now, start)."""
    if not token:
        return revision, ""
    try:
        decoded = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        if decoded.get("v") != "meta.k8s.io/v1" or not isinstance(decoded.get("start"), str):
            raise ValueError("unknown continue token version")
        return int(decoded["rv"]), decoded["start"]
    except (ValueError, TypeError, KeyError, binascii.Error) as exc:
        raise errors.bad_request(f"continue key is not valid: {exc}") from exc
