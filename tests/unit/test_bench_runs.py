"""The benchmarks still run (their numbers are read by people, never asserted here).

``--quick`` shrinks the matching benchmark's cluster, the cold start's runs and the scale
benchmarks; their own checks are in ``test_bench_matching.py``, ``test_bench_cold_start.py`` and
``test_bench_scale.py``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_prints_a_ratio_for_each_benchmark() -> None:
    result = subprocess.run([sys.executable, "-m", "bench.run", "--quick"], cwd=ROOT, capture_output=True,
                            text=True, timeout=300, check=True)
    ratios = json.loads(result.stdout.strip().splitlines()[-1])
    assert len(ratios) == 11  # 9 benchmarks; one rotation adds its floor's two ratios
    assert sum("protocol's floor" in name for name in ratios) == 2
    assert all(isinstance(value, float) and value > 0 for value in ratios.values())
