"""Cold start against a bare Functions app: ``python -m bench.cold_start [--quick]``.

What the Functions worker does when an instance starts: a fresh interpreter imports
``function_app`` and indexes its functions (``app.get_functions()``). Baseline: a bare app,
written to a temporary directory, that imports exactly ``azure.functions``,
``azure.keyvault.secrets`` and ``azure.identity`` and registers one HTTP function (so both sides
pay for the indexing machinery). The goal (issue #14: "costs at most 1.3x a bare app") is
``ours / baseline <= 1.3``; the heavy libraries (database drivers, the Kubernetes client, the
Azure Monitor exporter and OpenTelemetry SDK, azure-data-tables, azure-eventgrid, yaml, re2) load
only when a rotation uses them (``tests/unit/test_bench_cold_start.py`` checks which).

Each run starts a fresh interpreter per side: the same interpreter (``sys.executable``), the same
``sys.path`` (the bare app's directory, then the project root) and the same environment,
alternating which side goes first so drift cancels out. The child times itself from its first
line to "indexed" with ``time.perf_counter``: that is what the ratio uses. The whole subprocess's
wall time (interpreter start-up and exit, the same for both sides) is reported next to it.
Medians of ``runs`` runs.

**What is importable.** The development venv also holds what a deployment does not: the CLI's
click and rich, the test tools. A library that imports an optional one when it is there would
make the app look slower than it deploys (structlog imports rich whenever it is installed: tens
of milliseconds, for a library the Functions app never uses). So the children refuse, with
``ModuleNotFoundError`` as the deployed zip would, the top-level modules of every installed
distribution outside ``requirements.txt`` and its dependencies (:func:`not_deployed`). One
untimed run without that names what the app would load in this venv on top.

**Bytecode** is set for the children, never inherited: ``PYTHONPYCACHEPREFIX`` points into the
temporary directory, so neither side reads the ``__pycache__`` beside the sources.

- *cached bytecode* (the goal): one untimed run per side fills the prefix, then every timed run
  reads it. This is the import work itself, whatever the caller's environment says.
- *no bytecode*: an empty prefix that is never written (``PYTHONDONTWRITEBYTECODE``), so every
  module is compiled from source on both sides. That is how the zip from ``make package`` runs
  where its files are read-only: it holds no ``.pyc`` (``pip --no-compile``, ``.funcignore``)
  and none can be written. Reported for information; the goal is the cached ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = ROOT / "requirements.txt"
PROJECT = "akv-rotator"  # deployed as files (function_app.py, handlers/, rotation/), never hidden
GOAL = 1.3
FULL = {"runs": 15, "source_runs": 5}
QUICK = {"runs": 3, "source_runs": 1}
APP = "function_app"
BARE = "bare_function_app"
OWN = frozenset({"function_app", "handlers", "rotation", BARE})

BARE_APP = textwrap.dedent('''\
    """A bare Functions app: the SDKs any Key Vault rotator needs, one trivial HTTP function."""

    import azure.functions as func
    import azure.identity  # noqa: F401
    import azure.keyvault.secrets  # noqa: F401

    app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)


    @app.function_name(name="ping")
    @app.route(route="ping", methods=[func.HttpMethod.GET])
    def ping(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("ok")
    ''')

# Runs as ``python -c CHILD MODULE HIDDEN``. The finder goes in before the clock starts; sys and
# time are built in (already loaded); json is loaded only after the clock stops.
CHILD = textwrap.dedent('''\
    import sys

    HIDDEN = frozenset(filter(None, sys.argv[2].split(",")))


    class NotDeployed:
        """Refuses what requirements.txt does not install, as the deployed zip would."""

        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in HIDDEN:
                raise ModuleNotFoundError(f"No module named {name!r} (not deployed)", name=name)
            return None


    sys.meta_path.insert(0, NotDeployed())
    import time
    started = time.perf_counter()
    import importlib
    importlib.import_module(sys.argv[1]).app.get_functions()
    elapsed = time.perf_counter() - started
    import json
    print(json.dumps({"seconds": elapsed, "modules": sorted(sys.modules)}))
    ''')


@dataclass(frozen=True)
class Side:
    """Medians over the runs, in seconds, and the modules one run had loaded once indexed."""

    indexed: float  # in the child: first line to "indexed"
    wall: float  # the whole subprocess, as the parent saw it
    modules: frozenset[str]


@dataclass(frozen=True)
class Result:
    """Both sides under one bytecode setting."""

    ours: Side
    baseline: Side
    runs: int

    @property
    def ratio(self) -> float:
        return self.ours.indexed / self.baseline.indexed

    @property
    def beyond_baseline(self) -> list[str]:
        """Third-party packages function_app loads that the bare app does not."""
        return third_party(self.ours.modules - self.baseline.modules)


@dataclass(frozen=True)
class Report:
    cached: Result  # the goal's
    source: Result | None  # no bytecode, when asked for
    hidden: frozenset[str]  # top-level modules refused in the children
    venv_only: list[str]  # what function_app also loads when nothing is refused


def third_party(modules: Iterable[str]) -> list[str]:
    """Top-level packages, neither the standard library nor the apps; two levels for ``azure``."""
    names = set()
    for module in modules:
        parts = module.split(".")
        names.add(".".join(parts[:2]) if parts[0] == "azure" and len(parts) > 1 else parts[0])
    return sorted(name for name in names - OWN if name not in sys.stdlib_module_names)


def _top_level(dist: metadata.Distribution) -> set[str]:
    """The importable names a distribution installs (from its file list; not every wheel has
    top_level.txt)."""
    names = set()
    for file in dist.files or ():
        first = file.parts[0]
        if first.endswith((".dist-info", ".data", ".pth")) or first in ("..", "__pycache__"):
            continue
        name = first.split(".")[0]
        if name.isidentifier():
            names.add(name)
    return names


def not_deployed(requirements: Path = REQUIREMENTS) -> frozenset[str]:
    """Top-level modules installed here only by distributions a deployment leaves out.

    A deployment installs ``requirements.txt`` and what those distributions require (extras and
    markers evaluated for this interpreter). A name that a deployed distribution also installs
    (a namespace such as ``azure``) is never refused.
    """
    todo = [Requirement(line.split("#")[0]) for line in requirements.read_text().splitlines()
            if line.split("#")[0].strip()]
    seen: set[tuple[str, frozenset[str]]] = set()
    deployed: set[str] = {canonicalize_name(PROJECT)}
    while todo:
        requirement = todo.pop()
        key = (canonicalize_name(requirement.name), frozenset(requirement.extras))
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = metadata.distribution(requirement.name)
        except metadata.PackageNotFoundError:
            continue  # not installed here: nothing to refuse, nothing that could load
        deployed.add(key[0])
        for line in dist.requires or ():
            dependency = Requirement(line)
            marker = dependency.marker
            if marker is None or any(marker.evaluate({"extra": extra})
                                     for extra in requirement.extras or {""}):
                todo.append(dependency)
    kept: set[str] = set()
    left_out: set[str] = set()
    for dist in metadata.distributions():
        (kept if canonicalize_name(dist.metadata["Name"]) in deployed else left_out).update(_top_level(dist))
    return frozenset(left_out - kept - OWN)


def child_env(pycache: Path, *, write: bool, app_dir: Path) -> dict[str, str]:
    """The caller's environment with sys.path and bytecode set: the same for both sides."""
    env = {key: value for key, value in os.environ.items()
           if key not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX", "PYTHONPATH",
                          "PYTHONSTARTUP", "PYTHONPROFILEIMPORTTIME")}
    env["PYTHONPATH"] = os.pathsep.join((str(app_dir), str(ROOT)))
    env["PYTHONPYCACHEPREFIX"] = str(pycache)
    if not write:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def run_child(module: str, env: Mapping[str, str], hidden: Iterable[str] = ()
              ) -> tuple[float, float, frozenset[str]]:
    """One fresh interpreter: (seconds to indexed in the child, wall seconds, modules loaded)."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", CHILD, module, ",".join(sorted(hidden))],
                          cwd=ROOT, env=dict(env), capture_output=True, text=True, timeout=120,
                          check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"importing and indexing {module} failed:\n{done.stderr[-2000:]}")
    report = json.loads(done.stdout.strip().splitlines()[-1])
    return float(report["seconds"]), wall, frozenset(report["modules"])


def measure(runs: int, env: Mapping[str, str], hidden: frozenset[str]) -> Result:
    """``runs`` pairs of fresh interpreters, alternating which side goes first."""
    times: dict[str, list[tuple[float, float]]] = {APP: [], BARE: []}
    modules: dict[str, frozenset[str]] = {}
    for number in range(runs):
        for module in (BARE, APP) if number % 2 == 0 else (APP, BARE):
            indexed, wall, loaded = run_child(module, env, hidden)
            times[module].append((indexed, wall))
            modules[module] = loaded

    def side(module: str) -> Side:
        return Side(statistics.median(t for t, _ in times[module]),
                    statistics.median(w for _, w in times[module]), modules[module])

    return Result(side(APP), side(BARE), runs)


def bench_cold_start(runs: int = FULL["runs"], source_runs: int = FULL["source_runs"]) -> Report:
    """Time both sides with cached bytecode and, when ``source_runs``, without any."""
    hidden = not_deployed()
    with tempfile.TemporaryDirectory(prefix="akv-rotator-cold-start-") as tmp:
        app_dir = Path(tmp, "app")
        app_dir.mkdir()
        (app_dir / f"{BARE}.py").write_text(BARE_APP)
        env = child_env(Path(tmp, "pycache"), write=True, app_dir=app_dir)
        run_child(BARE, env, hidden)  # untimed: fill the bytecode prefix
        deployed = run_child(APP, env, hidden)[2]
        in_venv = run_child(APP, env)[2]  # untimed: what this venv adds
        cached = measure(runs, env, hidden)
        source = None
        if source_runs:
            empty = Path(tmp, "no-pycache")
            empty.mkdir()
            source = measure(source_runs, child_env(empty, write=False, app_dir=app_dir), hidden)
    return Report(cached, source, hidden, third_party(in_venv - deployed))


def describe(result: Result, what: str) -> list[str]:
    ours, base = result.ours, result.baseline
    return [
        f"{what}, median of {result.runs} fresh interpreters per side:",
        f"  bare app (azure.functions, azure.keyvault.secrets, azure.identity): "
        f"{base.indexed * 1000:.0f} ms to indexed, {base.wall * 1000:.0f} ms wall",
        f"  function_app: {ours.indexed * 1000:.0f} ms to indexed, {ours.wall * 1000:.0f} ms wall",
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.cold_start",
                                     description="Importing and indexing function_app against a bare app.")
    parser.add_argument("--quick", action="store_true", help="a few runs: proves it runs")
    args = parser.parse_args(argv)
    report = bench_cold_start(**(QUICK if args.quick else FULL))
    print(f"{len(report.hidden)} top-level modules refused (installed here, not by requirements.txt); "
          f"with them function_app would also load: {', '.join(report.venv_only) or 'nothing'}")
    cached = report.cached
    for line in describe(cached, "cached bytecode"):
        print(line)
    print(f"  third-party packages beyond the bare app's: {', '.join(cached.beyond_baseline) or 'none'}")
    print(f"ratio x{cached.ratio:.3f} (goal <= x{GOAL}): {'met' if cached.ratio <= GOAL else 'NOT met'}")
    if report.source is not None:
        for line in describe(report.source, "no bytecode (the zip from make package, read-only)"):
            print(line)
        print(f"ratio x{report.source.ratio:.3f} (for information)")


if __name__ == "__main__":
    main()
