"""Azurite's Table service (npm devDependency ``azurite``), on a free loopback port.

``running_azurite()`` starts ``node_modules/.bin/azurite-table`` in memory, in a temporary
working directory, waits until the port answers, yields the connection string for the
well-known development account, and stops the process by PID. ``--skipApiVersionCheck`` is
required: the Python SDK sends API versions newer than Azurite knows.

``running_azurite_oauth()`` starts another instance that accepts bearer tokens
(``--oauth basic``), which Azurite allows only over HTTPS: it serves a certificate for
127.0.0.1 from a throwaway CA (trustme) and yields the path-style table endpoint and the CA.
In basic mode Azurite checks a token's issuer, audience and lifetime, never its signature, so
:func:`unsigned_jwt` makes tokens it accepts (or, with another audience, refuses).
"""

from __future__ import annotations

import base64
import json
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trustme
from azure.core.credentials import AccessToken

ROOT = Path(__file__).resolve().parents[2]
AZURITE_TABLE = ROOT / "node_modules" / ".bin" / "azurite-table"
AZURITE_QUEUE = ROOT / "node_modules" / ".bin" / "azurite-queue"
ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = ("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/"
               "K1SZFPTOtr/KBHBeksoGMGw==")
START_TIMEOUT = 30.0
#: The audience Azure Storage tokens carry (the scope ``https://storage.azure.com/.default``).
STORAGE_AUDIENCE = "https://storage.azure.com"
#: An issuer Azurite accepts (it checks the prefix ``https://sts.windows.net/``).
ISSUER = "https://sts.windows.net/00000000-0000-0000-0000-000000000000/"


class AzuriteMissing(RuntimeError):
    """``node_modules/.bin/azurite-table`` is not installed."""


def connection_string(port: int) -> str:
    return (f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
            f"TableEndpoint=http://127.0.0.1:{port}/{ACCOUNT};")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


@dataclass(frozen=True)
class OAuthAzurite:
    """An Azurite Table service that takes bearer tokens over HTTPS."""

    port: int
    ca_path: Path  # the CA that issued its certificate: pass as ``connection_verify``

    @property
    def table_endpoint(self) -> str:
        """Path-style, as Azurite serves an account on an IP address."""
        return f"https://127.0.0.1:{self.port}/{ACCOUNT}"


def unsigned_jwt(audience: str = STORAGE_AUDIENCE, *, issuer: str = ISSUER,
                 lifetime: int = 3600, now: int | None = None) -> str:
    """A well-formed JWT with no signature (``alg: none``): what Azurite's basic OAuth reads."""
    issued = int(time.time()) if now is None else now

    def part(value: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    claims = {"aud": audience, "iss": issuer, "iat": issued, "nbf": issued,
              "exp": issued + lifetime, "oid": "11111111-1111-1111-1111-111111111111"}
    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


class UnsignedTokenCredential:
    """A ``TokenCredential`` for Azurite's basic OAuth: an :func:`unsigned_jwt` for the
    audience of the scope asked (or for ``audience``, to be refused). Records every scope."""

    def __init__(self, audience: str | None = None) -> None:
        self.audience = audience
        self.scopes: list[tuple[str, ...]] = []
        self.issued: list[str] = []

    def get_token(self, *scopes: str, claims: str | None = None, tenant_id: str | None = None,
                  enable_cae: bool = False, **kwargs: Any) -> AccessToken:
        self.scopes.append(scopes)
        token = unsigned_jwt(self.audience or scopes[0].removesuffix("/.default"))
        self.issued.append(token)
        return AccessToken(token, int(time.time()) + 3600)


@contextmanager
def running_azurite(executable: Path = AZURITE_TABLE, attempts: int = 3) -> Iterator[str]:
    """Run Azurite's Table service until the block ends; yields its connection string."""
    with _running(executable, attempts, ()) as port:
        yield connection_string(port)


@contextmanager
def running_azurite_queue(executable: Path = AZURITE_QUEUE, attempts: int = 3) -> Iterator[str]:
    """Run Azurite's Queue service until the block ends; yields its connection string."""
    with _running(executable, attempts, (), service="queue") as port:
        yield (f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
               f"QueueEndpoint=http://127.0.0.1:{port}/{ACCOUNT};")


@contextmanager
def running_azurite_oauth(executable: Path = AZURITE_TABLE,
                          attempts: int = 3) -> Iterator[OAuthAzurite]:
    """Run Azurite's Table service with ``--oauth basic`` over HTTPS until the block ends."""
    certs = Path(tempfile.mkdtemp(prefix="akv-rotator-azurite-tls-"))
    try:
        ca = trustme.CA()
        server = ca.issue_cert("127.0.0.1", "localhost")
        server.cert_chain_pems[0].write_to_path(str(certs / "server.crt"))
        server.private_key_pem.write_to_path(str(certs / "server.key"))
        ca.cert_pem.write_to_path(str(certs / "ca.pem"))
        tls = ("--oauth", "basic", "--cert", str(certs / "server.crt"),
               "--key", str(certs / "server.key"))
        with _running(executable, attempts, tls) as port:
            yield OAuthAzurite(port, certs / "ca.pem")
    finally:
        shutil.rmtree(certs, ignore_errors=True)


@contextmanager
def _running(executable: Path, attempts: int, extra: Sequence[str],
             service: str = "table") -> Iterator[int]:
    """Start one Azurite service (``azurite-table`` or ``azurite-queue``, with ``extra``
    arguments) on a free port; yields the port."""
    if not executable.exists():
        raise AzuriteMissing(f"{executable} not found: run `npm install --no-audit --no-fund` "
                             f"in {ROOT} (package.json has Azurite as a devDependency)")
    workdir = Path(tempfile.mkdtemp(prefix="akv-rotator-azurite-"))
    try:
        for attempt in range(1, attempts + 1):
            port = _free_port()  # another process may take it first: then start again
            log_path = workdir / f"azurite-{attempt}.log"
            with log_path.open("wb") as log:
                process = subprocess.Popen(
                    [str(executable), f"--{service}Host", "127.0.0.1", f"--{service}Port", str(port),
                     "--inMemoryPersistence", "--skipApiVersionCheck", "--disableTelemetry",
                     "--silent", *extra],
                    cwd=workdir, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                )
            try:
                if _wait_until_up(process, port):
                    yield port
                    return
            finally:
                _stop(process)
            if attempt == attempts:
                raise RuntimeError(f"Azurite did not start on 127.0.0.1:{port}; its log:\n"
                                   + log_path.read_text(errors="replace")[-2000:])
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _wait_until_up(process: subprocess.Popen[bytes], port: int) -> bool:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        if _answers(port):
            return True
        time.sleep(0.05)
    return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
