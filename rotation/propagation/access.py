"""The clusters to propagate to, built from the operator's ``ROTATOR_KUBECONFIG_SECRET``.

A kubeconfig lives in Key Vault like any other credential (and may itself be rotated), so it
is read each time propagation runs rather than cached for the life of the worker: a
rotated kubeconfig is picked up at the next step, never after a restart. The official client
is imported only here, on first use, so a deployment without clusters never loads it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NoReturn

from rotation.errors import RotatorError
from rotation.propagation.api import ClusterApi, ClusterError
from rotation.settings import ClusterSource

ReadSecret = Callable[[str, str], str]  # (vault, secret name) -> the latest value


class ClusterDirectory:
    """Callable: the configured clusters, ready to use. One that cannot be built (its
    kubeconfig unreadable or refused) is returned as a cluster whose every call fails with
    the reason, so the others go on and it is retried like an unreachable one."""

    def __init__(self, sources: Sequence[ClusterSource], read_secret: ReadSecret, *,
                 timeout_seconds: float) -> None:
        self._sources = tuple(sources)
        self._read_secret = read_secret
        self._timeout = timeout_seconds

    def __bool__(self) -> bool:
        return bool(self._sources)

    def __call__(self) -> list[ClusterApi]:
        from rotation.propagation import cluster

        built: list[ClusterApi] = []
        for source in self._sources:
            try:
                if source.vault is None or source.secret is None:
                    built.append(cluster.cluster_in_cluster(source.name,
                                                            timeout_seconds=self._timeout))
                    continue
                text = self._read_secret(source.vault, source.secret)
                built.append(cluster.cluster_from_kubeconfig_text(
                    source.name, text, timeout_seconds=self._timeout))
            except (ClusterError, RotatorError) as exc:
                built.append(Unusable(source.name, str(exc)))
        return built


class Unusable:
    """A configured cluster that could not be built; every call says why."""

    def __init__(self, name: str, why: str) -> None:
        self.name = name
        self._why = why

    def _fail(self) -> NoReturn:
        raise ClusterError(f"cannot use cluster {self.name}: {self._why}")

    def eso_objects(self) -> list[Mapping[str, object]]:
        self._fail()

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        self._fail()

    def force_sync(self, api_version: str, kind: str, namespace: str, name: str,
                   value: str) -> dict[str, Any] | None:
        self._fail()

    def workloads(self, namespace: str) -> list[dict[str, Any]]:
        self._fail()
