"""10. The operator's view: ``akv-rotator status`` and ``akv-rotator plan`` on the twin vault.

Run as an operator types them: the installed console script, in its own process, with the
app's settings from the environment (direct mode, the twin's static token). The plan of
``app-db-credentials`` runs every check of a rotation (tags, target, the admin and current
logins, privilege parity, the ExternalSecret that force-sync refreshes, the Deployment
Reloader restarts) and changes nothing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path


def command() -> list[str]:
    """The console script beside this interpreter, else ``python -m rotation.cli``."""
    script = Path(sys.executable).parent / "akv-rotator"
    if script.exists():
        return [str(script)]
    found = shutil.which("akv-rotator")
    return [found] if found else [sys.executable, "-m", "rotation.cli"]


def run(say: Callable[[str], None], secret: str) -> bool:
    """Print both commands' output; True when each exits 0 (nothing needs a person)."""
    env = dict(os.environ)
    if not sys.stdout.isatty():  # a log or a pipe: wide enough that no cell is cut short
        env["COLUMNS"] = "180"
    codes = []
    for args in (["status"], ["plan", secret]):
        say(f"\n$ akv-rotator {' '.join(args)}")
        sys.stdout.flush()
        done = subprocess.run([*command(), *args], env=env, timeout=120, check=False)
        codes.append(done.returncode)
        say(f"(exit code {done.returncode})")
    return codes == [0, 0]
