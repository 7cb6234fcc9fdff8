"""The standalone twin: ``python -m twins.jenkins`` in a subprocess, read through its one JSON line."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.twins.standalone import running_cli


@pytest.fixture
def standalone(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """The CLI on a free port with a context path; yields the process and its first stdout line."""
    arguments = ["--port", "0", "--cert-dir", str(tmp_path / "certs"), "--context-path", "/jenkins/"]
    with running_cli("twins.jenkins", *arguments) as (process, stdout):
        yield process, stdout.readline()


def _session(ca: str, user: str | None = None, secret: str | None = None) -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # REQUESTS_CA_BUNDLE would otherwise override verify
    session.verify = ca
    if user is not None:
        session.auth = (user, secret or "")
    return session


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_prints_one_json_line_whose_token_works_and_stops_on_a_signal(
    standalone: tuple[subprocess.Popen[str], str], tmp_path: Path, stop_signal: signal.Signals
) -> None:
    process, line = standalone
    printed: dict[str, Any] = json.loads(line)

    assert set(printed) == {"url", "user", "token", "otherUser", "ca"}
    assert printed["url"].startswith("https://127.0.0.1:")
    assert printed["url"].endswith("/jenkins/")
    assert Path(printed["ca"]) == tmp_path / "certs" / "ca.pem"
    assert printed["user"] != printed["otherUser"]

    with _session(printed["ca"], printed["user"], printed["token"]) as session:
        proof = session.get(f"{printed['url']}whoAmI/api/json", timeout=5)
        foreign = session.post(
            f"{printed['url']}user/{printed['otherUser']}/descriptorByName/"
            "jenkins.security.ApiTokenProperty/generateNewToken",
            timeout=5,
        )
    assert proof.json()["name"] == printed["user"]
    assert foreign.status_code == 403  # the other user exists (404 otherwise) and is not ours
    with _session(printed["ca"]) as session:
        users = session.get(printed["url"].removesuffix("jenkins/") + "_twin/users", timeout=5).json()
    assert [u["id"] for u in users] == [printed["user"], printed["otherUser"]]

    process.send_signal(stop_signal)
    assert process.wait(timeout=10) == 0
    rest, _ = process.communicate(timeout=10)
    assert rest == ""  # exactly one line on stdout
    assert Path(printed["ca"]).exists()  # a cert dir given on the command line is left in place
