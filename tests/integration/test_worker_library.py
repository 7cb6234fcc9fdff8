"""The function behaves the same under every azure-functions release the pins allow (ADR 0006).

In Azure, on Python 3.11 and 3.12, the worker may load its own bundled azure-functions unless
``PYTHON_ISOLATE_WORKER_DEPENDENCIES=1``; the app pins ``>=1.25`` (the first release whose
converter decodes CloudEvents) and sets that setting. Each release is installed alone into a
directory put first on ``sys.path`` of a fresh interpreter, which indexes ``function_app`` and
delivers every golden payload through that release's converter.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
OLDEST_ALLOWED = "1.25.0"
PRE_CLOUDEVENTS = "1.21.3"  # what an older worker may bundle: no CloudEvent in its converter


def pinned(requirement: str) -> str:
    """The lower bound of a dependency in pyproject.toml, read rather than restated."""
    text = (ROOT / "pyproject.toml").read_text()
    line = next(line for line in text.splitlines() if line.strip().startswith(f'"{requirement}>='))
    return line.split(">=", 1)[1].split(",", 1)[0].split('"', 1)[0]


def probe(tmp_path: Path, release: str | None) -> dict[str, Any]:
    """Run tests/support/library_probe.py with ``release`` first on sys.path (None: the venv's)."""
    paths = [str(ROOT)]
    if release is not None:
        target = tmp_path / f"azure-functions-{release}"
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                        "--disable-pip-version-check", "--target", str(target),
                        f"azure-functions=={release}"], check=True, capture_output=True, timeout=300)
        paths.insert(0, str(target))
    env = {key: value for key, value in os.environ.items() if not key.startswith("ROTATOR_")}
    env.update({"PYTHONPATH": os.pathsep.join(paths), "ROTATOR_VAULTS": "kv-test",
                "ROTATOR_JOURNAL": "memory:", "ROTATOR_TARGETS": json.dumps({"app-db": {
                    "kind": "postgresql", "address": "postgresql://db.example.com/app",
                    "logins": ["app"], "secrets": ["app-db"]}})})
    done = subprocess.run([sys.executable, "-m", "tests.support.library_probe"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return dict(json.loads(done.stdout.splitlines()[-1]))


@pytest.fixture(scope="module")
def newest(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return probe(tmp_path_factory.mktemp("newest"), None)


def test_the_pins_lower_bound_is_the_release_tested_here() -> None:
    assert pinned("azure-functions") == OLDEST_ALLOWED.rsplit(".", 1)[0]


def test_the_oldest_allowed_release_behaves_as_the_pinned_one(newest: dict[str, Any],
                                                              tmp_path: Path) -> None:
    oldest = probe(tmp_path, OLDEST_ALLOWED)
    assert oldest["version"] == OLDEST_ALLOWED and newest["version"] != OLDEST_ALLOWED
    assert oldest["functions"] == newest["functions"]
    assert oldest["payloads"] == newest["payloads"]
    cloud = {name: p for name, p in newest["payloads"].items() if name.startswith("cloudevents_")}
    assert cloud and all(p["decoded_as"] == "CloudEvent" for p in cloud.values())
    for payload in newest["payloads"].values():
        assert payload["raised"] is None and len(payload["outcomes"]) == 1, payload
        assert payload["outcomes"][0][0] in ("refused", "ignored"), payload  # sample-kv: not allowed


def test_a_release_without_cloudevents_explains_itself_and_never_raises(
        newest: dict[str, Any], tmp_path: Path) -> None:
    """Without PYTHON_ISOLATE_WORKER_DEPENDENCIES a worker may load such a release of its own."""
    old = probe(tmp_path, PRE_CLOUDEVENTS)
    assert old["version"] == PRE_CLOUDEVENTS
    for name, payload in old["payloads"].items():
        assert payload["raised"] is None and len(payload["outcomes"]) == 1, (name, payload)
        if name.startswith("cloudevents_"):
            outcome, detail = payload["outcomes"][0]
            assert outcome == "rejected" and "PYTHON_ISOLATE_WORKER_DEPENDENCIES=1" in detail
        else:
            assert payload == newest["payloads"][name]
