"""Azurite's Table service (npm devDependency ``azurite``), on a free loopback port.

``running_azurite()`` starts ``node_modules/.bin/azurite-table`` in memory, in a temporary
working directory, waits until the port answers, yields the connection string for the
well-known development account, and stops the process by PID. ``--skipApiVersionCheck`` is
required: the Python SDK sends API versions newer than Azurite knows.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
AZURITE_TABLE = ROOT / "node_modules" / ".bin" / "azurite-table"
ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = ("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/"
               "K1SZFPTOtr/KBHBeksoGMGw==")
START_TIMEOUT = 30.0


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


@contextmanager
def running_azurite(executable: Path = AZURITE_TABLE, attempts: int = 3) -> Iterator[str]:
    """Run Azurite's Table service until the block ends; yields its connection string."""
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
                    [str(executable), "--tableHost", "127.0.0.1", "--tablePort", str(port),
                     "--inMemoryPersistence", "--skipApiVersionCheck", "--disableTelemetry",
                     "--silent"],
                    cwd=workdir, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                )
            try:
                if _wait_until_up(process, port):
                    yield connection_string(port)
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
