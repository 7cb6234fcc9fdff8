"""Run a twin's CLI (``python -m twins.<name>``) in a subprocess, for the CLI tests of both twins.

The child gets the repository on ``PYTHONPATH`` and unbuffered output, so its first stdout
lines arrive as soon as it serves; whatever happens in the test, it is killed if still running
and its pipes drained, so no test leaks a process or a port.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

REPO_ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def running_cli(module: str, *args: str) -> Iterator[tuple[subprocess.Popen[str], IO[str]]]:
    """Start ``python -m module args``; yield the process and its stdout (stderr is piped too)."""
    environment = dict(os.environ, PYTHONPATH=str(REPO_ROOT), PYTHONUNBUFFERED="1")
    process = subprocess.Popen(
        [sys.executable, "-m", module, *args],
        cwd=REPO_ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    try:
        yield process, process.stdout
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=10)
