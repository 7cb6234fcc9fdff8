"""The standalone twin: ``python -m twins.keyvault`` in a subprocess, driven by the SDK."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.keyvault.secrets import SecretClient

from twins.keyvault import TwinCredential

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def standalone(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], dict[str, str]]]:
    environment = dict(os.environ, PYTHONPATH=str(REPO_ROOT), PYTHONUNBUFFERED="1")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "twins.keyvault",
            "--port",
            "0",
            "--cert-dir",
            str(tmp_path / "certs"),
            "--vault-name",
            "kv-cli",
            "--token",
            "cli-token",
        ],
        cwd=REPO_ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    printed: dict[str, str] = {}
    for _ in range(4):
        key, _, value = process.stdout.readline().strip().partition("=")
        printed[key] = value
    try:
        yield process, printed
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=10)


def test_standalone_twin_serves_the_sdk_and_stops_on_sigterm(
    standalone: tuple[subprocess.Popen[str], dict[str, str]], tmp_path: Path
) -> None:
    process, printed = standalone
    url, ca = printed["url"], printed["ca"]
    assert url.startswith("https://127.0.0.1:")
    assert Path(ca) == tmp_path / "certs" / "ca.pem"
    assert printed["topic"].endswith("/providers/Microsoft.KeyVault/vaults/kv-cli")
    assert printed["hint"].startswith(f'SecretClient("{url}", credential, connection_verify="{ca}"')

    client = SecretClient(
        url, TwinCredential("cli-token"), connection_verify=ca, verify_challenge_resource=False
    )
    client.set_secret("from-cli", "value")
    assert client.get_secret("from-cli").value == "value"

    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 0
    assert Path(ca).exists()  # a cert dir given on the command line is left in place
