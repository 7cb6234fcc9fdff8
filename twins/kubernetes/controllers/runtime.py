"""What every twin controller shares: a work queue with its worker thread, events, the watch.

:class:`WorkQueue` has the semantics of client-go's ``workqueue`` as controller-runtime uses
it (``sigs.k8s.io/controller-runtime/pkg/internal/controller/controller.go``):

- a key is queued at most once; a key added while it is being processed is processed again
  afterwards (never twice at the same time);
- the handler's :class:`Result` decides what follows, as ``ctrl.Result`` does: nothing
  (``Forget``), ``requeue_after`` seconds (``Forget`` + ``AddAfter``), or ``requeue`` / an
  exception: ``AddRateLimited``, the per-key exponential backoff ``base * 2**failures``
  capped at ``cap`` (controller-runtime's default limiter: 5 ms to 1000 s);
- delayed adds keep the earliest due time.

:class:`Controller` subscribes to the twin's change feed (``KubernetesTwin.watch``), hands
events to :meth:`Controller.on_event` (which only queues work), and remembers the highest
``resourceVersion`` it has been told about, so that :meth:`Controller.settled` can tell
"nothing left to do" from "an event is still on its way". :class:`EventRecorder` keeps the
Kubernetes Events the real controllers would post (the twin serves no ``events`` resource).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from twins.kubernetes.errors import ApiError
from twins.kubernetes.kinds import Obj, ResourceType

if TYPE_CHECKING:
    from twins.kubernetes.twin import KubernetesTwin

logger = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)
DEFAULT_BACKOFF = (0.005, 1000.0)
"""controller-runtime's per-item backoff: 5 ms doubling up to 1000 s."""


@dataclass(frozen=True)
class Result:
    """A reconcile's outcome, as ``ctrl.Result``: requeue after a delay, or with backoff."""

    requeue_after: float | None = None
    requeue: bool = False


@dataclass(frozen=True)
class RecordedEvent:
    """A Kubernetes Event a controller posted: on which object, its type, reason and message."""

    kind: str
    namespace: str
    name: str
    type: str  # Normal | Warning
    reason: str
    message: str
    component: str
    timestamp: float


class EventRecorder:
    """Thread-safe list of :class:`RecordedEvent`, oldest first."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._events: list[RecordedEvent] = []

    def record(self, obj: Obj, event_type: str, reason: str, message: str, component: str) -> None:
        """Record an Event about ``obj``."""
        metadata = obj.get("metadata", {})
        event = RecordedEvent(
            str(obj.get("kind", "")),
            str(metadata.get("namespace", "")),
            str(metadata.get("name", "")),
            event_type,
            reason,
            message,
            component,
            self._clock(),
        )
        with self._lock:
            self._events.append(event)

    @property
    def events(self) -> list[RecordedEvent]:
        """Every event so far (a copy)."""
        with self._lock:
            return list(self._events)

    def about(self, kind: str, namespace: str, name: str) -> list[RecordedEvent]:
        """The events about one object."""
        return [e for e in self.events if (e.kind, e.namespace, e.name) == (kind, namespace, name)]


class WorkQueue(Generic[K]):
    """A deduplicating, delaying, rate-limited queue drained by one worker thread."""

    def __init__(
        self,
        name: str,
        handler: Callable[[K], Result | None],
        *,
        backoff: tuple[float, float] = DEFAULT_BACKOFF,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self._handler = handler
        self._base, self._cap = backoff
        self._now = monotonic
        self._cond = threading.Condition()
        self._ready: deque[K] = deque()
        self._dirty: set[K] = set()
        self._processing: set[K] = set()
        self._due: dict[K, float] = {}
        self._heap: list[tuple[float, int, K]] = []
        self._sequence = itertools.count()
        self._failures: dict[K, int] = {}
        self._stopping = False
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"WorkQueue(name={self.name!r})"

    # -- adding -------------------------------------------------------------------------

    def add(self, key: K) -> None:
        """Queue ``key`` now (once, however often it is added before it is processed)."""
        with self._cond:
            self._add_locked(key)

    def add_after(self, key: K, delay: float) -> None:
        """Queue ``key`` after ``delay`` seconds (the earliest of several delays wins)."""
        with self._cond:
            self._add_after_locked(key, delay)

    def _add_locked(self, key: K) -> None:
        if key in self._dirty:
            return
        self._dirty.add(key)
        if key not in self._processing:
            self._ready.append(key)
            self._cond.notify_all()

    def _add_after_locked(self, key: K, delay: float) -> None:
        if delay <= 0:
            self._add_locked(key)
            return
        due = self._now() + delay
        if key in self._due and self._due[key] <= due:
            return
        self._due[key] = due
        heapq.heappush(self._heap, (due, next(self._sequence), key))
        self._cond.notify_all()

    def _add_rate_limited_locked(self, key: K) -> None:
        failures = self._failures.get(key, 0)
        self._failures[key] = failures + 1
        self._add_after_locked(key, min(self._base * 2**failures, self._cap))

    def _promote_locked(self) -> float | None:
        """Move due keys to the ready queue; seconds until the next one (None: none waiting)."""
        now = self._now()
        while self._heap:
            due, _, key = self._heap[0]
            if self._due.get(key) != due:
                heapq.heappop(self._heap)  # superseded by an earlier due time
                continue
            if due > now:
                return due - now
            heapq.heappop(self._heap)
            del self._due[key]
            self._add_locked(key)
        return None

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        """Start the worker thread."""
        if self._thread is not None:
            raise RuntimeError(f"{self.name} already started")
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the worker after the item in hand; queued items are dropped."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                logger.warning("worker did not stop queue=%s timeout=%s", self.name, timeout)

    def idle(self, horizon: float = 0.0) -> bool:
        """Nothing ready, nothing in hand, and nothing due within ``horizon`` seconds."""
        with self._cond:
            next_due = self._promote_locked()
            busy = bool(self._ready or self._processing)
            return not busy and (next_due is None or next_due > horizon)

    def describe(self) -> str:
        """What the queue holds, for a timeout message."""
        with self._cond:
            return (
                f"{self.name}: ready={list(self._ready)} processing={sorted(map(str, self._processing))} "
                f"delayed={len(self._due)}"
            )

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._stopping:
                        return
                    wait = self._promote_locked()
                    if self._ready:
                        key = self._ready.popleft()
                        self._dirty.discard(key)
                        self._processing.add(key)
                        break
                    self._cond.wait(wait)
            self._process(key)

    def _process(self, key: K) -> None:
        try:
            result = self._handler(key)
        except Exception:
            logger.exception("reconcile raised queue=%s key=%s", self.name, key)
            result = Result(requeue=True)
        with self._cond:
            self._processing.discard(key)
            if result is not None and result.requeue:
                self._add_rate_limited_locked(key)
            else:
                self._failures.pop(key, None)
                if result is not None and result.requeue_after is not None:
                    self._add_after_locked(key, result.requeue_after)
            if key in self._dirty:
                self._ready.append(key)
            self._cond.notify_all()


class Controller(ABC):
    """A controller living in the twin: watch events in, queued work out, settle on demand."""

    component = "controller"

    def __init__(self, twin: KubernetesTwin, recorder: EventRecorder | None = None) -> None:
        self._twin = twin
        self._store = twin.store
        self.recorder = recorder or EventRecorder()
        self._seen_lock = threading.Lock()
        self._seen = 0
        self._unsubscribe: Callable[[], None] | None = None

    def __enter__(self) -> Controller:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    @abstractmethod
    def queues(self) -> Iterable[WorkQueue[Any]]:
        """The controller's work queues."""

    @abstractmethod
    def on_event(self, event_type: str, obj: Obj) -> None:
        """Queue work for a change (runs on the writer's thread: queue, never write)."""

    @abstractmethod
    def initial_sync(self) -> None:
        """Queue work for what exists at start, as an informer's first list does."""

    def busy(self) -> bool:
        """Work in progress that is not in a queue (a rollout running); False by default."""
        return False

    def start(self) -> None:
        """Subscribe to the twin, list what exists, start the workers."""
        if self._unsubscribe is not None:
            raise RuntimeError(f"{type(self).__name__} already started")
        self._unsubscribe = self._twin.watch(self._on_watch)
        self._saw(int(self._store.resource_version))
        self.initial_sync()
        for queue in self.queues:
            queue.start()

    def stop(self) -> None:
        """Unsubscribe and stop the workers."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        for queue in self.queues:
            queue.stop()

    def settled(self, horizon: float = 0.5) -> bool:
        """Every committed write seen, queues idle within ``horizon`` seconds, nothing running."""
        committed = int(self._store.resource_version)
        with self._seen_lock:
            delivered = self._seen >= committed
        return delivered and all(queue.idle(horizon) for queue in self.queues) and not self.busy()

    def settle(self, timeout: float = 10.0, horizon: float = 0.5) -> None:
        """Wait until :meth:`settled`; ``TimeoutError`` after ``timeout`` seconds."""
        settle([self], timeout, horizon)

    def describe(self) -> str:
        """What is still pending, for a timeout message."""
        with self._seen_lock:
            seen = self._seen
        queues = "; ".join(queue.describe() for queue in self.queues)
        store = self._store.resource_version
        return f"{type(self).__name__}(seen={seen} store={store} busy={self.busy()} {queues})"

    def _on_watch(self, event_type: str, obj: Obj) -> None:
        try:
            self.on_event(event_type, obj)
        finally:
            version = str(obj.get("metadata", {}).get("resourceVersion") or "0")
            self._saw(int(version) if version.isdigit() else 0)

    def _saw(self, version: int) -> None:
        with self._seen_lock:
            self._seen = max(self._seen, version)

    # -- store helpers ------------------------------------------------------------------

    def _type(self, kind: str) -> ResourceType:
        return self._twin.registry.by_kind(kind)

    def _get(self, kind: str, namespace: str, name: str) -> Obj | None:
        resource_type = self._type(kind)
        try:
            return self._store.get(resource_type, resource_type.preferred_version, namespace, name)
        except ApiError as error:
            if error.code == 404:
                return None
            raise

    def _list(self, kind: str, namespace: str | None = None) -> list[Obj]:
        objects = self._store.objects(self._type(kind))
        if namespace is None:
            return objects
        return [obj for obj in objects if obj["metadata"].get("namespace") == namespace]


def settle(controllers: Iterable[Controller], timeout: float = 10.0, horizon: float = 0.5) -> None:
    """Wait until every controller is :meth:`~Controller.settled` twice in a row, 10 ms apart.

    ``horizon``: retries and periodic requeues due later than that do not count as pending.
    """
    controllers = list(controllers)
    deadline = time.monotonic() + timeout
    in_a_row = 0
    while True:
        if all(controller.settled(horizon) for controller in controllers):
            in_a_row += 1
            if in_a_row >= 2:
                return
        else:
            in_a_row = 0
        if time.monotonic() > deadline:
            pending = "; ".join(controller.describe() for controller in controllers)
            raise TimeoutError(f"controllers did not settle within {timeout} s: {pending}")
        time.sleep(0.01)


def object_key(obj: Obj) -> tuple[str, str]:
    """``(namespace, name)`` of an object."""
    metadata = obj.get("metadata", {})
    return str(metadata.get("namespace", "")), str(metadata.get("name", ""))
