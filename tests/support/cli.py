"""Running ``akv-rotator`` as an operator does: the installed console script, in a subprocess.

Everything it prints is added to the ``said`` list the leak guard searches (the ``app``
fixture's HTTP bodies), so no CLI test can print a secret value unnoticed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCRIPT = Path(sys.executable).parent / "akv-rotator"


@dataclass
class Ran:
    """One run: its exit code, stdout and stderr."""

    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)

    def rows(self) -> list[list[str]]:
        """The table's lines, split into words."""
        return [line.split() for line in self.out.splitlines() if line.strip()]


def run_cli(args: tuple[str, ...] | list[str], said: list[str],
            env: Mapping[str, str | None] | None = None) -> Ran:
    """The console script with os.environ (where the fixtures put the app settings), a wide
    table, and ``env`` on top (None removes a variable)."""
    full = {**os.environ, "COLUMNS": "250"}
    for key, value in (env or {}).items():
        if value is None:
            full.pop(key, None)
        else:
            full[key] = value
    done = subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, timeout=180,
                          env=full, check=False)
    said.extend([done.stdout, done.stderr])
    return Ran(done.returncode, done.stdout, done.stderr)
