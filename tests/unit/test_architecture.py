"""The layering the docs promise, checked on every run so the picture cannot rot.

import-linter enforces the package contracts in pyproject.toml (the core never imports the
edge, the twins or the demo). It cannot forbid a subpackage of an external namespace package
such as ``azure.functions``, nor say "exactly one module may import this driver", so those
two rules are checked here by reading the import statements.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "rotation"
DRIVERS = ("psycopg", "pymysql", "kubernetes", "requests", "httpx", "pynetbox",
           "azure.data.tables", "azure.eventgrid", "azure.storage.queue", "sqlite3")


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def core_modules() -> dict[str, set[str]]:
    return {
        ".".join(path.relative_to(ROOT).with_suffix("").parts): imports_of(path)
        for path in CORE.rglob("*.py")
    }


def test_import_linter_contracts_hold() -> None:
    lint_imports = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert lint_imports, "import-linter is a dev dependency"
    result = subprocess.run([lint_imports], cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert " 0 broken" in result.stdout


def test_core_never_imports_azure_functions() -> None:
    offenders = {module for module, names in core_modules().items()
                 if any(name == "azure.functions" or name.startswith("azure.functions.")
                        for name in names)}
    assert offenders == set()


def test_each_driver_is_imported_by_exactly_one_adapter_module() -> None:
    importers: dict[str, set[str]] = defaultdict(set)
    for module, names in core_modules().items():
        for name in names:
            for driver in DRIVERS:
                if name == driver or name.startswith(driver + "."):
                    importers[driver].add(module)
    assert importers["psycopg"] == {"rotation.targets.postgres"}
    assert importers["pymysql"] == {"rotation.targets.mysql"}
    assert importers["azure.data.tables"] == {"rotation.journal.tables"}
    assert importers["azure.storage.queue"] == {"rotation.queue"}
    assert importers["sqlite3"] == {"rotation.journal.sqlite"}
    for driver, modules in importers.items():
        assert len(modules) == 1, f"{driver} is imported by {sorted(modules)}"


def test_ruff_finds_nothing() -> None:
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent))
    assert ruff, "ruff is a dev dependency"
    result = subprocess.run([ruff, "check", "--no-cache", "rotation", "handlers", "twins", "demo",
                             "function_app.py", "tests"],
                            cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout


def test_mypy_strict_on_the_core_and_the_edge() -> None:
    result = subprocess.run([sys.executable, "-m", "mypy", "--no-incremental"], cwd=ROOT,
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout
