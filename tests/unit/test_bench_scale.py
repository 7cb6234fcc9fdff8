"""The scale benchmarks of issue #14 run and report every figure next to its goal.

Each runs with ``--quick`` (20 events on 2 workers; 300 secrets; 5 rotations a side) against a
real PostgreSQL, the Key Vault twin and Azurite, as ``make bench`` runs them in full. Timings are
read by people, never asserted: only that the run finished, checked what it checks (the burst
rotated every secret exactly once, and every login works), and wrote its fields.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

FIELDS = {
    "burst": {"succeeded", "rotations", "duplicated", "missing", "logins_failing", "dead_lettered",
              "creates_per_rotation", "ceiling_per_second", "rotations_per_second",
              "fraction_of_ceiling", "fraction_goal", "rss_mb", "peak_rss_mb", "rss_goal_mb",
              "deliveries", "deliveries_per_event", "cpu", "correct"},
    "sweep": {"secrets", "due", "listed", "ours", "decide_and_mark", "baseline", "ratio",
              "decide_and_mark_ratio", "goal"},
    "rotation_cost": {"rounds", "ours", "baseline", "ratio", "goal", "keyvault_requests",
                      "pg_connections", "journal_writes", "step_ms", "protocol_floor",
                      "ratio_to_protocol_floor", "floor_to_baseline"},
}


def run_quick(module: str, out: Path) -> tuple[str, dict[str, object]]:
    done = subprocess.run([sys.executable, "-m", f"bench.{module}", "--quick", "--json", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-4000:]
    return done.stdout, json.loads(out.read_text())


@pytest.mark.parametrize("module", sorted(FIELDS))
def test_a_quick_run_reports_every_figure_with_its_goal(module: str, tmp_path: Path) -> None:
    stdout, report = run_quick(module, tmp_path / "result.json")
    assert FIELDS[module] <= report.keys()
    assert "goal" in stdout
    assert "met" in stdout  # each figure says whether it met its goal
    if module == "burst":  # correctness, not speed: every secret rotated exactly once
        assert report["correct"] is True, report
        assert report["rotations"] == {"succeeded": report["events"]}
        assert report["duplicated"] == report["missing"] == report["logins_failing"] == 0
        assert len(report["rss_mb"]) == report["workers"]  # type: ignore[arg-type]
