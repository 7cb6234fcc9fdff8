"""``KeyVaultTwin``: the public face of the twin, wiring store, events, faults and server.

A test (or the demo) starts one, points the unmodified ``SecretClient`` at ``twin.url`` with
``twin.ca_path`` as the trusted CA, and asserts on what the vault saw (``twin.requests``) and
emitted (``twin.events``). Everything runs in-process on background threads; ``stop()`` (or
leaving the ``with`` block) tears it all down; temporary certificates go with the object.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from twins.http.lifecycle import HTTPSTwin
from twins.keyvault.credential import DEFAULT_TOKEN, TwinCredential
from twins.keyvault.events import Event, EventDispatcher
from twins.keyvault.faults import Fault, FaultInjector, RequestLog
from twins.keyvault.limits import Limiter, OperationClass, ServiceLimits, ThrottleCounts
from twins.keyvault.routes import VaultApp, VaultConfig
from twins.keyvault.server import TwinHTTPServer
from twins.keyvault.store import VaultStore
from twins.keyvault.tls import ORGANIZATION

if TYPE_CHECKING:
    from azure.keyvault.secrets import SecretClient

DEFAULT_SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
# The tenant the Azure SDK's own recordings use once sanitised.
DEFAULT_TENANT = "12345678-1234-1234-1234-123456789012"


class KeyVaultTwin(HTTPSTwin):
    """An HTTPS Key Vault (secrets only) the real ``SecretClient`` can talk to.

    ``accepted_tokens=None`` accepts any non-empty bearer token; a set restricts it.
    ``delete_delay`` is how long a delete stays in progress (``/deletedsecrets/{name}`` 404,
    name not reusable: 409 ``ObjectIsBeingDeleted``). With ``event_url`` every event is also
    POSTed there as Event Grid would. ``store`` is the vault itself, for seeding or inspecting
    state without HTTP (writes made there emit no events). ``clock`` replaces ``time.time`` for
    the store's timestamps, delete delay, scheduled purges and the service limits' windows.
    ``limits`` turns on Key Vault's per-vault transaction quotas (``ServiceLimits()`` for the
    documented 300 creates / 4,000 others per 10 s; off by default, see
    :mod:`twins.keyvault.limits`). Start, stop, ``with`` and ``ca_path`` come from
    :class:`~twins.http.lifecycle.HTTPSTwin`.
    """

    # Positional parameters kept: the signature is the contract other modules were given.
    def __init__(  # noqa: PLR0917
        self,
        vault_name: str = "kv-twin",
        host: str = "127.0.0.1",
        port: int = 0,
        cert_dir: str | Path | None = None,
        event_url: str | None = None,
        accepted_tokens: Iterable[str] | None = None,
        delete_delay: float = 0.0,
        subscription_id: str = DEFAULT_SUBSCRIPTION,
        resource_group: str = "rg-twin",
        *,
        tenant_id: str = DEFAULT_TENANT,
        clock: Callable[[], float] = time.time,
        delivery_attempts: int = 4,
        delivery_backoff: float = 0.1,
        limits: ServiceLimits | None = None,
    ) -> None:
        super().__init__(
            host,
            port,
            cert_dir,
            thread_name=f"kv-twin-{vault_name}",
            cert_prefix="kv-twin-",
            organization=ORGANIZATION,
        )
        self.vault_name = vault_name
        self.topic = (
            f"/subscriptions/{subscription_id}/resourceGroups/{resource_group}"
            f"/providers/Microsoft.KeyVault/vaults/{vault_name}"
        )
        if isinstance(accepted_tokens, str):
            accepted_tokens = [accepted_tokens]  # one token, not a set of its characters
        self.accepted_tokens = frozenset(accepted_tokens) if accepted_tokens is not None else None
        self.store = VaultStore(delete_delay=delete_delay, clock=clock)
        self._dispatcher = EventDispatcher(event_url, attempts=delivery_attempts, backoff=delivery_backoff)
        self._faults = FaultInjector()
        self._log = RequestLog()
        self._limiter = Limiter(limits, clock)
        self._app = VaultApp(
            VaultConfig(vault_name, self.topic, tenant_id, self.accepted_tokens),
            self.store,
            self._dispatcher,
            self._faults,
            self._log,
            limiter=self._limiter,
        )

    def __repr__(self) -> str:
        where = self._app.base_url or "not started"
        return f"KeyVaultTwin(vault_name={self.vault_name!r}, url={where!r})"

    # -- lifecycle (the rest is HTTPSTwin's) ------------------------------------------

    def _make_server(self, address: tuple[str, int], context: ssl.SSLContext) -> TwinHTTPServer:
        return TwinHTTPServer(address, self._app, context)

    def _on_bound(self, base_url: str) -> None:
        self._app.base_url = base_url
        self._dispatcher.start()

    def _on_stopped(self) -> None:
        """Stop event delivery once no request can publish any more."""
        self._dispatcher.stop()

    # -- where it is ------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``https://host:port`` of the running twin (the vault URL for ``SecretClient``)."""
        return self._started_url()

    def credential(self) -> TwinCredential:
        """A credential whose token this twin accepts."""
        token = min(self.accepted_tokens) if self.accepted_tokens else DEFAULT_TOKEN
        return TwinCredential(token)

    def secret_client(self, **kwargs: Any) -> SecretClient:
        """A real ``SecretClient`` wired to this twin; ``kwargs`` go to its constructor.

        Pass ``credential=`` to use another credential (e.g. one with a rejected token).
        """
        from azure.keyvault.secrets import SecretClient

        credential = kwargs.pop("credential", None) or self.credential()
        kwargs.setdefault("connection_verify", str(self.ca_path))
        kwargs.setdefault("verify_challenge_resource", False)
        return SecretClient(self.url, credential, **kwargs)

    # -- faults -----------------------------------------------------------------------

    def inject_fault(  # noqa: PLR0917 - same order as the admin endpoint's JSON fields
        self,
        status: int = 429,
        count: int = 1,
        retry_after: float | int | str | None = None,
        method: str | None = None,
        path_contains: str | None = None,
        code: str | None = None,
        message: str | None = None,
        *,
        after_processing: bool = False,
        path_equals: str | None = None,
        delay_seconds: float = 0.0,
    ) -> Fault:
        """Fail the next ``count`` matching authenticated requests; ``status=0`` drops them.

        With ``after_processing=True`` the operation happens and only the response is replaced
        (a lost response: the client cannot tell whether its set was applied).
        ``delay_seconds`` answers late; with ``status=200`` the answer is the real one.
        """
        fault = Fault(status, count, retry_after, method, path_contains, code, message,
                      after_processing, path_equals, delay_seconds)
        self._faults.add(fault)
        return fault

    def clear_faults(self) -> None:
        """Disarm every injected fault."""
        self._faults.clear()

    # -- service limits ---------------------------------------------------------------

    @property
    def limits(self) -> ServiceLimits | None:
        """The service limits enforced, or ``None`` when off (the default)."""
        return self._limiter.limits

    def throttle_stats(self) -> dict[OperationClass, ThrottleCounts]:
        """Authenticated vault requests served and refused (429) per class, limits on or off.

        Classes: ``"create"`` (set secret) and ``"other"``. Requests answered by an injected
        fault before processing are in neither count.
        """
        return self._limiter.stats()

    def reset_limits(self) -> None:
        """Empty the windows and zero the counts (e.g. between benchmark phases)."""
        self._limiter.reset()

    # -- events -----------------------------------------------------------------------

    def subscribe(self, callback: Callable[[Event], None]) -> None:
        """Receive every event on the delivery thread (never on a request thread)."""
        self._dispatcher.subscribe(callback)

    def emit(self, secret_name: str, event_type: str) -> Event:
        """Queue an event for the secret's current version and return it.

        Raises :class:`~twins.keyvault.errors.VaultError` (status 404) for an unknown or deleted
        secret and ``ValueError`` for an event type other than the three secret events.
        """
        return self._app.emit(secret_name, event_type)

    def wait_for_deliveries(self, timeout: float = 5.0) -> bool:
        """Block until queued events are delivered (or dropped); False if ``timeout`` passed."""
        return self._dispatcher.wait_idle(timeout)

    @property
    def events(self) -> list[Event]:
        """Every event emitted so far, oldest first (a copy)."""
        return self._dispatcher.emitted

    @property
    def requests(self) -> RequestLog:
        """Vault API requests seen so far (admin calls excluded)."""
        return self._log
