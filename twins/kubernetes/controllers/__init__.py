"""Controllers that run inside the Kubernetes twin and behave as ESO and Reloader document.

- :class:`EsoController` (:mod:`~twins.kubernetes.controllers.eso`): External Secrets
  Operator v2.9.0's ExternalSecret and SecretStore controllers with the azurekv provider
  (:mod:`~twins.kubernetes.controllers.azurekv`), reading the Key Vault twin (or any vault)
  through the real Azure SDK (:mod:`~twins.kubernetes.controllers.vaults`): refresh policies,
  the target Secret with ESO's labels, annotations and ownerReference, the status with
  ESO's conditions, ``refreshTime`` and ``syncedResourceVersion`` (computed as ESO computes
  them: :mod:`~twins.kubernetes.controllers.gocompat`);
- :class:`ReloaderController` (:mod:`~twins.kubernetes.controllers.reloader`): Stakater
  Reloader 1.4 for Secrets: which workloads a data change rolls, and the marker it sets;
- :class:`RolloutController` (:mod:`~twins.kubernetes.controllers.rollouts`): workload status
  progressing through a rollout over ``rollout_seconds``, or stalling on demand;
- :class:`Controllers` (:mod:`~twins.kubernetes.controllers.manager`): the three together,
  with :meth:`Controllers.settle` for tests.

They watch the twin in-process (``KubernetesTwin.watch``), work on their own threads
(:mod:`~twins.kubernetes.controllers.runtime`: controller-runtime's work queue semantics) and
write through the twin's store with the API server's rules (resourceVersion conflicts, the
status subresource, generation). Each module's docstring says what is not reproduced.
"""

from twins.kubernetes.controllers.eso import EsoController
from twins.kubernetes.controllers.manager import Controllers
from twins.kubernetes.controllers.reloader import ReloaderController, env_var_name, secret_sha
from twins.kubernetes.controllers.rollouts import RolloutController
from twins.kubernetes.controllers.runtime import EventRecorder, RecordedEvent, Result, WorkQueue
from twins.kubernetes.controllers.vaults import (
    FunctionVault,
    SdkVault,
    SecretNotFound,
    VaultItem,
    VaultReader,
    VaultReadError,
    VaultSecret,
    normalise_vault_url,
)

__all__ = [
    "Controllers",
    "EsoController",
    "EventRecorder",
    "FunctionVault",
    "RecordedEvent",
    "ReloaderController",
    "Result",
    "RolloutController",
    "SdkVault",
    "SecretNotFound",
    "VaultItem",
    "VaultReadError",
    "VaultReader",
    "VaultSecret",
    "WorkQueue",
    "env_var_name",
    "normalise_vault_url",
    "secret_sha",
]
