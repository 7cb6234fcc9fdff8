"""``make demo`` runs: the README's first command, on the twins and an embedded PostgreSQL."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
JENKINS_TOKEN = re.compile(r"\b11[0-9a-f]{32}\b")
PASSWORD_FIELD = re.compile(r'"(password|token)"\s*:\s*"')
# A url-safe preset password of the default length: 40 characters, every class present.
GENERATED = re.compile(r"(?<![\w.~-])[A-Za-z][\w.~-]{39}(?![\w.~-])")


def generated_passwords(text: str) -> list[str]:
    return [m for m in GENERATED.findall(text) if any(c.isupper() for c in m)
            and any(c.islower() for c in m) and any(c.isdigit() for c in m)
            and any(c in "-._~" for c in m)]


def test_the_demo_tells_both_stories_and_prints_no_secret(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROTATOR_")}
    env["ROTATOR_DEMO_DIR"] = str(tmp_path / "demo")
    done = subprocess.run([sys.executable, "-m", "demo"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.rstrip().endswith("Demo succeeded.")
    assert "old password refused by PostgreSQL: yes" in done.stdout
    assert "during the grace period both tokens work: yes" in done.stdout
    assert "old refused yes, new works yes, tokens left 1" in done.stdout
    logs = (tmp_path / "demo" / "rotator.log.jsonl").read_text()
    for text in (done.stdout, done.stderr, logs):
        assert not JENKINS_TOKEN.search(text)
        assert not PASSWORD_FIELD.search(text)
        assert not generated_passwords(text)
