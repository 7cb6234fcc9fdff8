"""Application Insights export is on exactly when its connection string is set."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_probe(*args: str) -> dict:
    env = {**os.environ, "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
           "PYTHONPATH": str(ROOT)}
    env.pop("APPLICATIONINSIGHTS_CONNECTION_STRING", None)
    result = subprocess.run([sys.executable, "-m", "tests.support.appinsights_probe", *args],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
                            check=True)
    output: dict = json.loads(result.stdout.strip().splitlines()[-1])
    return output


def test_without_a_connection_string_nothing_is_installed_or_exported() -> None:
    probe = run_probe()
    assert probe["installed"] is False
    assert probe["provider"] == "ProxyTracerProvider"  # the API's no-op default
    assert probe["envelopes"] == []


def test_with_a_connection_string_spans_reach_application_insights() -> None:
    probe = run_probe("--with-connection-string")
    assert probe["installed"] is True
    spans = [e for e in probe["envelopes"]
             if e["data"]["baseType"] in ("RemoteDependencyData", "RequestData")]
    probe_span = next(e for e in spans if e["data"]["baseData"]["name"] == "rotation/probe")
    properties = probe_span["data"]["baseData"]["properties"]
    assert properties["rotator.rotation_id"] == "probe-1"
    assert properties["rotator.secret"] == "probe-secret"
    assert probe_span["tags"]["ai.cloud.role"] == "akv-rotator"
    # Only the ingestion stand-in on loopback: in particular no VM metadata request
    # (169.254.169.254) from the distro's azure_vm resource detector.
    assert probe["connected"] == ["127.0.0.1"]
