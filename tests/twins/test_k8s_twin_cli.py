"""The standalone twin: ``python -m twins.kubernetes`` in a subprocess, read through its one JSON line."""

from __future__ import annotations

import json
import signal
import ssl
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.twins.standalone import running_cli


@pytest.fixture
def standalone(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], dict[str, Any]]]:
    """The CLI on a free port; yields the process and its parsed first stdout line."""
    with running_cli("twins.kubernetes", "--port", "0", "--cert-dir", str(tmp_path / "certs")) as (
        process,
        out,
    ):
        yield process, json.loads(out.readline())


def _get(url: str, ca: str, token: str) -> Any:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})  # noqa: S310 - https
    context = ssl.create_default_context(cafile=ca)
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context)
    )
    with opener.open(request, timeout=5) as response:
        return json.loads(response.read())


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_prints_one_json_line_whose_token_and_kubeconfig_work(
    standalone: tuple[subprocess.Popen[str], dict[str, Any]], tmp_path: Path, stop_signal: signal.Signals
) -> None:
    process, printed = standalone
    assert set(printed) == {"url", "kubeconfig", "token", "ca"}
    assert printed["url"].startswith("https://127.0.0.1:")
    assert Path(printed["ca"]) == tmp_path / "certs" / "ca.pem"

    namespaces = _get(f"{printed['url']}/api/v1/namespaces", printed["ca"], printed["token"])
    assert [n["metadata"]["name"] for n in namespaces["items"]] == [
        "default",
        "kube-node-lease",
        "kube-public",
        "kube-system",
    ]

    kubeconfig = json.loads(Path(printed["kubeconfig"]).read_text())  # JSON is YAML
    assert kubeconfig["clusters"][0]["cluster"] == {
        "server": printed["url"],
        "certificate-authority": printed["ca"],
    }
    assert kubeconfig["users"][0]["user"] == {"token": printed["token"]}
    assert Path(printed["kubeconfig"]).stat().st_mode & 0o777 == 0o600

    process.send_signal(stop_signal)
    assert process.wait(timeout=10) == 0
    rest, _ = process.communicate(timeout=10)
    assert rest == ""  # exactly one line on stdout


def test_the_kubeconfig_loads_in_the_official_client(
    standalone: tuple[subprocess.Popen[str], dict[str, Any]],
) -> None:
    from kubernetes import client, config  # the official client, a runtime dependency

    _, printed = standalone
    configuration = client.Configuration()
    config.load_kube_config(config_file=printed["kubeconfig"], client_configuration=configuration)
    configuration.proxy = None
    with client.ApiClient(configuration) as api_client:
        groups = client.ApisApi(api_client).get_api_versions()
        assert "external-secrets.io" in [g.name for g in groups.groups]


def test_serves_without_validation_when_the_crds_are_missing(tmp_path: Path) -> None:
    arguments = ["--port", "0", "--cert-dir", str(tmp_path / "certs"), "--crd-dir", str(tmp_path / "none")]
    with running_cli("twins.kubernetes", *arguments) as (process, out):
        printed = json.loads(out.readline())
        assert _get(f"{printed['url']}/apis/external-secrets.io/v1", printed["ca"], printed["token"])[
            "resources"
        ]
        process.send_signal(signal.SIGTERM)
        _, errors = process.communicate(timeout=10)
    assert "served without schema validation" in errors
