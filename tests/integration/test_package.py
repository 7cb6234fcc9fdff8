"""``make package`` builds the zip Azure runs, and that zip imports on its own.

scripts/package.py is run as ``make package`` runs it; the zip is unpacked into an empty
directory and imported by a fresh CPython 3.11 (the venv's interpreter with ``-I -S``, so none
of the venv's site-packages) that sees only the package (tests/support/package_probe.py). One
build serves the module; pip's cache makes the others quick (about 10 s each, warm).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "package.py"
PROBE = ROOT / "tests" / "support" / "package_probe.py"
SITE_PACKAGES = ".python_packages/lib/site-packages/"

# The slow part is pip: about 30 MB of wheels on a cold cache, then seconds.
pytestmark = pytest.mark.timeout(600)

# As tests/unit/test_function_index.py has them: the first binding's type and route.
FUNCTIONS = {
    "keyvault_events": ("eventGridTrigger", None),
    "rotate_secret": ("httpTrigger", "secrets/{name}/rotate"),
    "secrets": ("httpTrigger", "secrets"),
    "secret_rotations": ("httpTrigger", "secrets/{name}/rotations"),
    "rotation": ("httpTrigger", "rotations/{id}"),
    "sweeper": ("timerTrigger", None),
    "credential_health": ("timerTrigger", None),
    "queued_work": ("queueTrigger", None),
    "poisoned_work": ("queueTrigger", None),
}
NEVER_SHIPPED = ("twins/", "demo/", "tests/", "docs/", "bench/", "infra/", "scripts/", ".ci/",
                 "rotation/cli/", "Makefile", "README.md", "local.settings", "pyproject.toml",
                 "package.json", "package-lock.json", "node_modules/", ".git", ".venv", "dist/")


@dataclass(frozen=True)
class Built:
    zip: Path
    stdout: str
    started: float  # time.time() when the build began
    names: tuple[str, ...]

    @property
    def app_names(self) -> set[str]:
        return {name for name in self.names if not name.startswith(".python_packages/")}


def build(root: Path, output: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), str(output), "--root", str(root)],
                          capture_output=True, text=True, timeout=540, check=False)


def built(root: Path, output: Path) -> Built:
    started = time.time()
    done = build(root, output)
    assert done.returncode == 0, done.stdout + done.stderr
    with zipfile.ZipFile(output) as archive:
        return Built(output, done.stdout, started, tuple(archive.namelist()))


def unpack(package: Built, into: Path) -> Path:
    into.mkdir(parents=True)
    assert not any(into.iterdir())
    with zipfile.ZipFile(package.zip) as archive:
        archive.extractall(into)
    return into


def probe(app: Path) -> dict[str, Any]:
    """tests/support/package_probe.py in a fresh interpreter that sees only ``app``."""
    done = subprocess.run([sys.executable, "-I", "-S", "-B", str(PROBE), str(app)], cwd=app,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return dict(json.loads(done.stdout.splitlines()[-1]))


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True,
                          timeout=60).stdout


def tracked(root: Path = ROOT) -> list[str]:
    return [name for name in git(root, "ls-files", "-z", "--cached").split("\0") if name]


def tree_copy(dest: Path, edit: Callable[[Path], None] = lambda tree: None) -> Path:
    """A git work tree holding this tree's tracked files as they are now, edited by ``edit``."""
    for name in tracked():
        source = ROOT / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    edit(dest)
    git(dest, "init", "-q")
    git(dest, "add", "-A")
    return dest


def requirements(root: Path = ROOT) -> dict[str, str]:
    """requirements.txt's pins: normalized name -> version."""
    pins = {}
    for line in (root / "requirements.txt").read_text().splitlines():
        found = re.match(r"([A-Za-z0-9_.-]+)(\[[^\]]*\])?==([^\s;#]+)", line.strip())
        if found:
            pins[re.sub(r"[-_.]+", "_", found.group(1)).lower()] = found.group(3)
    return pins


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """This tree, packaged as `make package` does (into a temporary directory)."""
    return built(ROOT, tmp_path_factory.mktemp("package") / "akv-rotator.zip")


@pytest.fixture(scope="module")
def unpacked(package: Built, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return unpack(package, tmp_path_factory.mktemp("unpacked") / "wwwroot")


@pytest.fixture(scope="module")
def probed(unpacked: Path) -> dict[str, Any]:
    return probe(unpacked)


def test_the_zip_is_laid_out_as_azure_runs_it(package: Built) -> None:
    names = package.names
    assert {"function_app.py", "host.json", "requirements.txt"} <= set(names)
    assert all(name.startswith(SITE_PACKAGES) for name in names
               if name.startswith(".python_packages/"))
    assert f"{SITE_PACKAGES}azure/functions/__init__.py" in names
    installed = {re.sub(r"[-_.]+", "_", m.group(1)).lower(): m.group(2)
                 for name in names
                 if (m := re.fullmatch(rf"{re.escape(SITE_PACKAGES)}([^/]+)-([^-/]+)\.dist-info/WHEEL",
                                       name))}
    pins = requirements()
    assert {name: installed.get(name) for name in pins} == pins
    assert "psycopg_binary" in installed  # psycopg[binary]: the C implementation and its libpq
    assert not [name for name in names if "__pycache__" in name or name.endswith(".pyc")]
    assert not [name for name in names if name.startswith(f"{SITE_PACKAGES}bin/")]
    assert f"built {package.zip} " in package.stdout and " MB (" in package.stdout


def test_the_zip_is_deterministic(package: Built) -> None:
    with zipfile.ZipFile(package.zip) as archive:
        infos = archive.infolist()
    assert [info.filename for info in infos] == sorted(info.filename for info in infos)
    assert {info.date_time for info in infos} == {(1980, 1, 1, 0, 0, 0)}
    assert {info.external_attr >> 16 for info in infos} <= {0o100644, 0o100755}


def test_two_builds_of_one_tree_are_byte_identical_and_leave_out_untracked_files(
        package: Built, tmp_path: Path) -> None:
    def litter(tree: Path) -> None:
        """What a work tree has lying around that git does not track."""
        (tree / "local.settings.json").write_text('{"Values": {"ROTATOR_VAULTS": "kv-prod"}}')
        (tree / "rotation" / "scratch.py").write_text("raise SystemExit('a stray local file')\n")
        (tree / "rotation" / "__pycache__").mkdir()
        (tree / "rotation" / "__pycache__" / "engine.cpython-311.pyc").write_bytes(b"\0")

    tree = tree_copy(tmp_path / "tree")
    litter(tree)  # after `git add`: untracked
    first = built(tree, tmp_path / "first.zip")
    second = built(tree, tmp_path / "second.zip")
    assert first.zip.read_bytes() == second.zip.read_bytes()
    assert first.app_names == package.app_names
    assert set(first.names) == set(package.names)


def test_a_fresh_cpython_311_sees_only_the_package(probed: dict[str, Any], unpacked: Path) -> None:
    assert probed["implementation"] == "CPython" and probed["version"][:2] == [3, 11]
    assert probed["executable"] == sys.executable  # the venv's interpreter...
    assert probed["flags"] == {"isolated": 1, "no_site": 1}  # ...without the venv's site-packages
    assert probed["absent"]["pytest"] == "ModuleNotFoundError: No module named 'pytest'"
    app, deps, *stdlib = probed["path"]
    assert (app, deps) == (str(unpacked), str(unpacked / ".python_packages/lib/site-packages"))
    assert stdlib and all(entry.startswith(probed["base_prefix"]) and "site-packages" not in entry
                          for entry in stdlib)
    assert probed["outside"] == []  # every module came from the package or the standard library
    assert all(path.startswith(SITE_PACKAGES) for path in probed["from_site_packages"].values())
    assert set(probed["from_site_packages"]) >= {"azure.functions", "kubernetes", "psycopg"}


def test_the_packaged_app_indexes_every_function(probed: dict[str, Any]) -> None:
    assert probed["function_app"] is None, probed["function_app"]
    indexed = {name: (bindings[0]["type"], bindings[0].get("route"))
               for name, bindings in probed["functions"].items()}
    assert indexed == FUNCTIONS


def test_every_module_the_app_loads_at_run_time_imports_from_the_package(
        probed: dict[str, Any]) -> None:
    failed = {name: error for name, error in probed["lazy"].items() if error}
    assert failed == {}
    assert set(probed["lazy"]) >= {
        "rotation.targets.postgres", "rotation.targets.mysql", "rotation.targets.jenkins",
        "rotation.targets.netbox", "rotation.journal.tables", "rotation.journal.sqlite",
        "rotation.propagation.cluster", "rotation.publishing", "azure.storage.queue",
        "azure.monitor.opentelemetry"}
    assert {name: error for name, error in probed["compiled"].items() if error} == {}
    assert probed["psycopg_impl"] == "binary"
    detectors = probed["entry_points"]["opentelemetry_resource_detector"]
    assert {"azure_app_service", "azure_functions"} <= set(detectors)
    assert probed["entry_points"]["opentelemetry_context"] == {"contextvars_context": None}
    assert not [f"{group}:{name}: {error}" for group, points in probed["entry_points"].items()
                for name, error in points.items() if error]


def test_no_test_twin_demo_doc_or_cli_code_is_shipped(package: Built,
                                                      probed: dict[str, Any]) -> None:
    shipped = sorted(name for name in package.app_names if name.startswith(NEVER_SHIPPED))
    assert shipped == []
    assert {path.split("/", 1)[0] for path in package.app_names} == {
        "function_app.py", "host.json", "requirements.txt", "handlers", "rotation"}
    for module in ("rotation.cli", "click", "rich", "twins", "tests", "demo"):
        assert (probed["absent"][module] or "").startswith("ModuleNotFoundError"), module


def test_every_app_entry_is_a_tracked_file_as_it_is_in_the_tree(package: Built) -> None:
    assert package.app_names <= set(tracked())
    with zipfile.ZipFile(package.zip) as archive:
        differ = [name for name in sorted(package.app_names)
                  if archive.read(name) != (ROOT / name).read_bytes()
                  and (ROOT / name).stat().st_mtime < package.started]  # not edited since
    assert differ == []


def test_funcignore_and_the_zip_agree(package: Built, tmp_path: Path) -> None:
    """git's own gitignore engine (as azd reads .funcignore) agrees with what the script shipped."""
    excluded = set(git(ROOT, "ls-files", "-z", "--cached", "--ignored",
                       "--exclude-from=.funcignore").split("\0")) - {""}
    assert {"rotation/cli/__init__.py", "tests/__init__.py", "twins/__init__.py", "Makefile",
            "README.md", ".funcignore", "local.settings.example.json"} <= excluded
    kept = {name for name in tracked() if (ROOT / name).is_file()} - excluded
    assert package.app_names == kept  # excluded: absent; not excluded: present

    # The dependencies too: nothing in the zip is a path .funcignore excludes.
    everything = unpack(package, tmp_path / "all")
    git(tmp_path, "init", "-q", "--bare", "scratch.git")
    ignored = git(tmp_path, "--git-dir=scratch.git", f"--work-tree={everything}", "ls-files",
                  "--others", "--ignored", f"--exclude-from={ROOT / '.funcignore'}")
    assert ignored == ""


def test_a_funcignore_line_core_tools_reads_differently_is_refused(tmp_path: Path) -> None:
    def edit(tree: Path) -> None:
        with (tree / ".funcignore").open("a") as funcignore:
            funcignore.write("\ntests/\ncache\n")

    done = build(tree_copy(tmp_path / "tree", edit), tmp_path / "refused.zip")
    assert done.returncode == 1
    assert "'tests/'" in done.stderr and "'cache'" in done.stderr and "'**/cache'" in done.stderr
    assert not (tmp_path / "refused.zip").exists()


def test_a_requirement_without_a_wheel_for_azure_fails_naming_it(tmp_path: Path) -> None:
    """PyYAML 5.3.1 predates CPython 3.11 and has no manylinux wheel: Azure could not install it."""

    def edit(tree: Path) -> None:
        text = (tree / "requirements.txt").read_text()
        assert "PyYAML==6.0.4" in text
        (tree / "requirements.txt").write_text(text.replace("PyYAML==6.0.4", "PyYAML==5.3.1"))

    done = build(tree_copy(tmp_path / "tree", edit), tmp_path / "nowheel.zip")
    assert done.returncode == 1, done.stdout
    assert "no wheel of PyYAML==5.3.1" in done.stderr, done.stderr
    assert not (tmp_path / "nowheel.zip").exists()


def test_a_dependency_dropped_from_requirements_fails_the_import_naming_it(
        tmp_path: Path) -> None:
    """Without kubernetes in requirements.txt, the package builds but ESO propagation cannot load."""

    def edit(tree: Path) -> None:
        lines = (tree / "requirements.txt").read_text().splitlines(keepends=True)
        kept = [line for line in lines if not line.startswith("kubernetes==")]
        assert len(kept) == len(lines) - 1
        (tree / "requirements.txt").write_text("".join(kept))

    without = built(tree_copy(tmp_path / "tree", edit), tmp_path / "without-kubernetes.zip")
    assert not [name for name in without.names if name.startswith(f"{SITE_PACKAGES}kubernetes")]
    probed = probe(unpack(without, tmp_path / "wwwroot"))
    assert probed["function_app"] is None  # the app still indexes: kubernetes is loaded lazily
    failed = {name: error for name, error in probed["lazy"].items() if error}
    assert failed == {"rotation.propagation.cluster":
                      "ModuleNotFoundError: No module named 'kubernetes'"}
