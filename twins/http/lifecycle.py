"""Start, stop and ``with`` for a twin served over HTTPS on a background thread.

:class:`HTTPSTwin` owns the invariants every twin's facade needs, so each twin only says how to
build its server and what to do once it has an address:

- ``start()`` is idempotent, makes fresh certificates, binds (port 0 picks a free one), and
  tells the subclass its base URL *before* the first request can be served;
- without a ``cert_dir`` the certificates go to a temporary directory removed when the twin is
  garbage-collected (or at exit), not at ``stop()``: a client built from the twin may outlive
  it and must then fail to connect, not fail to find its CA file;
- ``stop()`` is idempotent and cuts pooled client connections instead of serving them on.
"""

from __future__ import annotations

import shutil
import ssl
import tempfile
import threading
import weakref
from abc import ABC, abstractmethod
from pathlib import Path
from types import TracebackType
from typing import Self

from twins.http.server import HTTPSServer
from twins.tls import make_certificates

POLL_INTERVAL = 0.05  # how soon serve_forever notices shutdown(): keeps stop() fast in tests
JOIN_TIMEOUT = 5.0


class HTTPSTwin(ABC):
    """Base of a twin's facade: the listener's lifecycle, its URL and the CA to trust.

    ``thread_name`` names the serving thread (seen in thread dumps), ``cert_prefix`` the
    temporary certificate directory, and ``organization`` the throwaway CA, so a certificate
    error says which twin it was.
    """

    def __init__(
        self,
        host: str,
        port: int,
        cert_dir: str | Path | None,
        *,
        thread_name: str,
        cert_prefix: str,
        organization: str,
    ) -> None:
        self.host = host
        self._port = port
        self._cert_dir = Path(cert_dir) if cert_dir is not None else None
        self._thread_name = thread_name
        self._cert_prefix = cert_prefix
        self._organization = organization
        self._server: HTTPSServer | None = None
        self._thread: threading.Thread | None = None
        self._ca_path: Path | None = None
        self._base_url: str | None = None

    @abstractmethod
    def _make_server(self, address: tuple[str, int], context: ssl.SSLContext) -> HTTPSServer:
        """Bind this twin's server (not serving yet)."""

    @abstractmethod
    def _on_bound(self, base_url: str) -> None:
        """Learn ``https://host:port``; called once bound, before the first request is served."""

    def _on_stopped(self) -> None:
        """Release what the twin runs besides the server (called after the server stopped)."""
        return  # a hook, not abstract: a twin that runs nothing else has nothing to stop

    def start(self) -> Self:
        """Make certificates, bind, and serve on a background thread."""
        if self._server is not None:
            return self
        if self._cert_dir is None:
            self._cert_dir = Path(tempfile.mkdtemp(prefix=self._cert_prefix))
            weakref.finalize(self, shutil.rmtree, self._cert_dir, ignore_errors=True)
        certificates = make_certificates(self._cert_dir, self.host, organization=self._organization)
        self._ca_path = certificates.ca_path
        server = self._make_server((self.host, self._port), certificates.server_context())
        self._base_url = https_url(self.host, server.server_address[1])
        self._on_bound(self._base_url)
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": POLL_INTERVAL},
            name=self._thread_name,
            daemon=True,
        )
        self._server = server
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and cut open connections, then let the subclass stop the rest."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        if self._thread is not None:
            self._thread.join(JOIN_TIMEOUT)
        self._on_stopped()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _started_url(self) -> str:
        """``https://host:port``, or ``RuntimeError`` before the first ``start()``."""
        if self._base_url is None:
            raise RuntimeError("the twin is not started")
        return self._base_url

    @property
    def ca_path(self) -> Path:
        """The CA certificate that signed the server certificate (what a client must trust)."""
        if self._ca_path is None:
            raise RuntimeError("the twin is not started")
        return self._ca_path


def https_url(host: str, port: int) -> str:
    """The URL a local client uses: a wildcard bind address is reached under its loopback name."""
    if host in ("", "0.0.0.0"):  # noqa: S104 - reachable locally under the loopback name
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"https://{host}:{port}"
