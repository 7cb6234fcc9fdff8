"""Run as ``python -I -S package_probe.py APP_DIR``: import an unpacked deployment package alone.

``-I -S`` keep the interpreter's own site-packages (and so the test venv's) off ``sys.path``;
the probe then puts the unpacked package's root and its ``.python_packages/lib/site-packages``
in front of the standard library, as the Functions worker does in ``/home/site/wwwroot``, and
imports nothing before that but the standard library. It indexes ``function_app``, imports
every module the app loads lazily at run time, and prints one JSON document of what it found:
each failure is recorded with the exception, never raised, so one run names every missing piece.
"""

from __future__ import annotations

import importlib
import json
import platform
import sys
import traceback
from pathlib import Path
from typing import Any

# Loaded on first use, not by importing function_app: the target kinds (rotation.catalogue),
# the journals (rotation.settings), ESO propagation, rotation events out, and the Azure Monitor
# exporter that handlers/observability.py configures when a connection string is set.
LAZY_MODULES = (
    "rotation.targets.postgres",
    "rotation.targets.mysql",
    "rotation.targets.jenkins",
    "rotation.targets.netbox",
    "rotation.journal.tables",
    "rotation.journal.sqlite",
    "rotation.propagation.cluster",
    "rotation.publishing",
    "azure.storage.queue",
    "azure.monitor.opentelemetry",
    "azure.monitor.opentelemetry.exporter",
    "opentelemetry.sdk.resources",
)
# Not in the package, and must not be importable from it.
ABSENT_MODULES = ("pytest", "rotation.cli", "click", "rich", "twins", "tests", "demo")
# Compiled extensions from manylinux wheels: loading them proves they are for this CPython and CPU.
COMPILED_MODULES = ("psycopg_binary.pq", "re2._re2", "yaml._yaml", "cryptography.hazmat.bindings._rust",
                    "pydantic_core._pydantic_core", "_cffi_backend", "multidict._multidict")
# Entry points the OpenTelemetry SDK and the Azure Monitor distro resolve by distribution metadata.
ENTRY_POINT_GROUPS = ("opentelemetry_context", "opentelemetry_resource_detector")


def failure(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def main() -> None:
    app = Path(sys.argv[1]).resolve()
    site_packages = app / ".python_packages" / "lib" / "site-packages"
    stdlib = [entry for entry in sys.path if entry and "site-packages" not in entry
              and Path(entry).resolve() != Path(__file__).resolve().parent]
    sys.path[:] = [str(app), str(site_packages), *stdlib]

    found: dict[str, Any] = {
        "version": list(sys.version_info[:3]), "implementation": platform.python_implementation(),
        "executable": sys.executable, "base_prefix": sys.base_prefix, "path": list(sys.path),
        "flags": {"isolated": sys.flags.isolated, "no_site": sys.flags.no_site},
    }

    absent: dict[str, str | None] = {}
    for name in ABSENT_MODULES:
        try:
            importlib.import_module(name)
            absent[name] = None
        except ImportError as exc:
            absent[name] = failure(exc)
    found["absent"] = absent

    try:
        import function_app

        found["functions"] = {
            f.get_function_name(): [json.loads(raw) for raw in f.get_raw_bindings()]
            for f in function_app.app.get_functions()
        }
        found["function_app"] = None
    except Exception as exc:
        found["functions"] = {}
        found["function_app"] = failure(exc) + "\n" + traceback.format_exc()

    lazy: dict[str, str | None] = {}
    for name in LAZY_MODULES:
        try:
            importlib.import_module(name)
            lazy[name] = None
        except Exception as exc:
            lazy[name] = failure(exc)
    found["lazy"] = lazy

    compiled: dict[str, str | None] = {}
    for name in COMPILED_MODULES:
        try:
            module = importlib.import_module(name)
            compiled[name] = None if str(module.__file__).endswith(".so") else f"not compiled: {module}"
        except Exception as exc:
            compiled[name] = failure(exc)
    found["compiled"] = compiled
    psycopg = sys.modules.get("psycopg")
    found["psycopg_impl"] = getattr(getattr(psycopg, "pq", None), "__impl__", None)

    from importlib.metadata import entry_points

    loaded: dict[str, dict[str, str | None]] = {}
    for group in ENTRY_POINT_GROUPS:
        loaded[group] = {}
        for point in entry_points(group=group):
            try:
                point.load()
                loaded[group][point.name] = None
            except Exception as exc:
                loaded[group][point.name] = failure(exc)
    found["entry_points"] = loaded

    # Where every imported module came from: the package or the interpreter's standard library.
    found["outside"] = sorted(
        f"{name}: {file}" for name, module in list(sys.modules.items())
        if name not in ("__main__", "__mp_main__") and (file := getattr(module, "__file__", None))
        and not Path(file).resolve().is_relative_to(app)
        and not Path(file).resolve().is_relative_to(Path(sys.base_prefix).resolve()))
    found["from_site_packages"] = {
        name: str(Path(module.__file__).resolve().relative_to(app))
        for name in ("azure.functions", "kubernetes", "psycopg", "pymysql", "re2", "yaml",
                     "structlog", "azure.keyvault.secrets")
        if (module := sys.modules.get(name)) is not None and module.__file__}
    found["modules"] = len(sys.modules)
    print(json.dumps(found))


if __name__ == "__main__":
    main()
