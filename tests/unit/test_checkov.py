"""checkov on infra/ (Terraform and Kubernetes): zero failed checks, and every skipped check
suppressed next to its resource with a reason.

checkov runs from its own virtualenv (``.venv-checkov``, ``scripts/install-checkov.sh``,
which ``make test`` runs first): its dependency tree cannot share the project's. Offline: no
external modules, no policy download, no API key.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"


@pytest.fixture(scope="module")
def reports() -> dict[str, Any]:
    if not CHECKOV.exists():
        pytest.fail("checkov is missing: `make test` installs it (bash scripts/install-checkov.sh)")
    done = subprocess.run(
        [str(CHECKOV), "-d", "infra", "--framework", "terraform,kubernetes", "--output", "json",
         "--download-external-modules", "false", "--skip-download"],
        cwd=ROOT, capture_output=True, text=True, timeout=240, check=False)
    answer = json.loads(done.stdout)
    return {report["check_type"]: report for report in (answer if isinstance(answer, list) else [answer])}


def test_both_frameworks_were_scanned(reports: dict[str, Any]) -> None:
    assert set(reports) == {"terraform", "kubernetes"}
    assert reports["terraform"]["summary"]["resource_count"] >= 15
    assert reports["kubernetes"]["summary"]["resource_count"] >= 5


@pytest.mark.parametrize("framework", ["terraform", "kubernetes"])
def test_no_check_fails_and_nothing_fails_to_parse(reports: dict[str, Any], framework: str) -> None:
    summary = reports[framework]["summary"]
    failed = [(c["check_id"], c["file_path"], c["resource"])
              for c in reports[framework]["results"]["failed_checks"]]
    assert failed == [] and summary["failed"] == 0
    assert summary["parsing_errors"] == 0
    assert summary["passed"] > 0


@pytest.mark.parametrize("framework", ["terraform", "kubernetes"])
def test_every_suppression_says_why(reports: dict[str, Any], framework: str) -> None:
    for check in reports[framework]["results"]["skipped_checks"]:
        reason = (check.get("check_result") or {}).get("suppress_comment") or ""
        assert len(reason.split()) >= 6, f"{check['check_id']} in {check['file_path']}: {reason!r}"
