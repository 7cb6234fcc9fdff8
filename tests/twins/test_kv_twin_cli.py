"""The standalone twin: ``python -m twins.keyvault`` in a subprocess, driven by the SDK."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.keyvault.secrets import SecretClient

from tests.twins.standalone import running_cli
from twins.keyvault import TwinCredential


@pytest.fixture
def standalone(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], dict[str, str]]]:
    certs = str(tmp_path / "certs")
    arguments = ["--port", "0", "--cert-dir", certs, "--vault-name", "kv-cli", "--token", "cli-token"]
    with running_cli("twins.keyvault", *arguments) as (process, stdout):
        printed: dict[str, str] = {}
        for _ in range(4):
            key, _, value = stdout.readline().strip().partition("=")
            printed[key] = value
        yield process, printed


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
