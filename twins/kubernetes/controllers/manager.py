"""``Controllers``: ESO, Reloader and the rollout simulation running together in one twin.

Usage::

    with KubernetesTwin() as cluster, KeyVaultTwin() as vault, \\
            Controllers(cluster, keyvault=vault, rollout_seconds=0.5) as controllers:
        cluster.put(store, external_secret, deployment)   # (one put per object)
        controllers.settle()                               # ES synced, Secret written
        ...patch the ES's force-sync annotation through the official client...
        controllers.settle()                               # re-synced, reloaded, rolled out

Each controller can also run alone (``with EsoController(twin, vaults): ...``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from twins.kubernetes.controllers.eso import EsoController
from twins.kubernetes.controllers.reloader import ReloaderController, Strategy
from twins.kubernetes.controllers.rollouts import RolloutController
from twins.kubernetes.controllers.runtime import (
    DEFAULT_BACKOFF,
    Controller,
    EventRecorder,
    RecordedEvent,
    settle,
)
from twins.kubernetes.controllers.vaults import VaultSource

if TYPE_CHECKING:
    from twins.kubernetes.twin import KubernetesTwin


class Controllers:
    """The twin's in-cluster controllers, started and stopped together.

    ``keyvault`` is a ``KeyVaultTwin`` (its ``url`` is the vault URL stores must name), or a
    mapping from vault URLs to what reads them (see :class:`EsoController`). ``eso``,
    ``reloader`` and ``rollouts`` switch each controller off; ``reload_strategy`` is
    Reloader's ``--reload-strategy``; ``rollout_seconds`` how long a rollout takes;
    ``nodes`` how many nodes DaemonSets run on; ``clock`` stamps times (Unix seconds).
    """

    def __init__(
        self,
        twin: KubernetesTwin,
        *,
        keyvault: Any = None,
        eso: bool = True,
        reloader: bool = True,
        rollouts: bool = True,
        reload_strategy: Strategy = "env-vars",
        auto_reload_all: bool = False,
        rollout_seconds: float = 0.0,
        nodes: int = 1,
        clock: Callable[[], float] = time.time,
        controller_class: str = "",
        flood_gate: bool = True,
        backoff: tuple[float, float] = DEFAULT_BACKOFF,
    ) -> None:
        self.recorder = EventRecorder(clock)
        self.eso = (
            EsoController(
                twin,
                _vaults(keyvault),
                clock=clock,
                controller_class=controller_class,
                flood_gate=flood_gate,
                backoff=backoff,
                recorder=self.recorder,
            )
            if eso
            else None
        )
        self.reloader = (
            ReloaderController(
                twin,
                strategy=reload_strategy,
                auto_reload_all=auto_reload_all,
                clock=clock,
                recorder=self.recorder,
            )
            if reloader
            else None
        )
        self.rollouts = (
            RolloutController(
                twin, rollout_seconds=rollout_seconds, nodes=nodes, clock=clock, recorder=self.recorder
            )
            if rollouts
            else None
        )
        self._started: list[Controller] = []

    def __repr__(self) -> str:
        return f"Controllers(running={[type(c).__name__ for c in self._started]!r})"

    def __enter__(self) -> Controllers:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def controllers(self) -> list[Controller]:
        """The controllers switched on."""
        return [c for c in (self.rollouts, self.reloader, self.eso) if c is not None]

    def start(self) -> None:
        """Start every controller (each lists what exists, then follows the changes)."""
        try:
            for controller in self.controllers:
                controller.start()
                self._started.append(controller)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop them all (queued work is dropped)."""
        while self._started:
            self._started.pop().stop()

    def settle(self, timeout: float = 10.0, horizon: float = 0.5) -> None:
        """Wait until nothing is pending: every write seen, queues idle, no rollout progressing.

        Retries and refresh requeues due more than ``horizon`` seconds ahead do not count; a
        stalled (failed) rollout does not either. ``TimeoutError`` names what is pending.
        """
        settle(self.controllers, timeout, horizon)

    def tick(self) -> None:
        """Requeue every ExternalSecret now, as refresh timers would."""
        if self.eso is not None:
            self.eso.tick()

    def fail_rollout(self, kind: str, namespace: str, name: str, *, failing: bool = True) -> None:
        """Make a workload's rollouts stall (``failing=False`` lets them complete again)."""
        if self.rollouts is None:
            raise RuntimeError("the rollout controller is switched off")
        self.rollouts.fail_rollout(kind, namespace, name, failing=failing)

    @property
    def events(self) -> list[RecordedEvent]:
        """The Kubernetes Events the controllers posted, oldest first."""
        return self.recorder.events


def _vaults(keyvault: Any) -> Mapping[str, VaultSource]:
    if keyvault is None:
        return {}
    if isinstance(keyvault, Mapping):
        return dict(keyvault)
    if hasattr(keyvault, "url") and hasattr(keyvault, "secret_client"):
        return {keyvault.url: keyvault}
    raise TypeError(
        f"keyvault must be a KeyVaultTwin or a mapping of vault URLs, not {type(keyvault).__name__}"
    )
