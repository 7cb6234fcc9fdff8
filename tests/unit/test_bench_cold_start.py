"""Cold start: the benchmark runs (its timings are read by people, never asserted), and what
importing and indexing ``function_app`` loads is asserted, in fresh interpreters.

The heavy libraries stay out of a fresh interpreter that imported ``function_app`` and indexed
its functions, and each one still loads on the path that uses it. Made lazy for issue #14:
``yaml`` (:func:`rotation.dr.read_dr_versions`) and ``re2``
(:func:`rotation.propagation.goregexp.compile_go`). The others were lazy already and are
guarded here so they stay so: the database drivers (the catalogue imports a target kind's
module on first use), the Kubernetes client (:class:`rotation.propagation.access.ClusterDirectory`
when called), azure-data-tables (:func:`rotation.journal.open_journal`), azure-eventgrid
(:func:`rotation.composition.build_services` with events configured), the Azure Monitor
distro and the OpenTelemetry SDK (:func:`handlers.observability.configure_tracing`),
azure-storage-queue (:mod:`rotation.queue`) and azure-identity (:mod:`rotation.keyvault` builds
a credential on first use).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bench.cold_start import QUICK, bench_cold_start

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("psycopg", "pymysql", "kubernetes", "azure.monitor.opentelemetry", "opentelemetry.sdk",
         "azure.data.tables", "azure.eventgrid", "azure.storage.queue", "azure.identity", "yaml",
         "re2")
TARGETS = json.dumps({
    "app-db": {"kind": "postgresql", "address": "postgresql://db.example.com/app",
               "logins": ["app"], "secrets": ["app-db"]},
    "shop-db": {"kind": "mysql", "address": "mysql://db.example.com:3306",
                "logins": ["shop"], "secrets": ["shop-db"]},
})
SETTINGS = {"ROTATOR_VAULTS": "kv1", "ROTATOR_TARGETS": TARGETS,
            "AzureWebJobsStorage": "UseDevelopmentStorage=true"}
CONNECTION = ("InstrumentationKey=00000000-0000-0000-0000-000000000000;"
              "IngestionEndpoint=http://127.0.0.1:9/")  # nothing listens; nothing is sent
# Imports and indexes the app, runs USE, and prints which heavy modules were loaded before and after.
PROBE = """\
import json
import sys

import function_app

function_app.app.get_functions()
HEAVY = {heavy!r}
indexed = [name for name in HEAVY if name in sys.modules]
{use}
used = [name for name in HEAVY if name in sys.modules]
print(json.dumps({{"indexed": indexed, "used": used}}))
"""


def run_fresh(use: str = "pass", **env: str) -> dict[str, list[str]]:
    """A fresh interpreter with the project root on sys.path and no settings but ``env``."""
    clean = {key: value for key, value in os.environ.items()
             if not key.startswith(("ROTATOR_", "AzureWebJobs", "APPLICATIONINSIGHTS_"))}
    clean.update(PYTHONPATH=str(ROOT), APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL="true", **env)
    code = PROBE.format(heavy=HEAVY, use=textwrap.dedent(use))
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=clean, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    found: dict[str, list[str]] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


def test_importing_and_indexing_the_app_loads_no_heavy_module() -> None:
    assert run_fresh()["indexed"] == []


BUILD_SERVICES = """
from handlers.services import get_services
get_services()
"""
BUILD_TARGET = """
from handlers.services import get_services
from rotation.catalogue import build_target
from rotation.targets.base import TargetContext
definition = get_services().settings.targets.targets[{target!r}]
build_target(TargetContext(definition, "single-user", None, 5.0))
"""


@pytest.mark.parametrize(("loads", "use", "env"), [
    (("azure.data.tables",), BUILD_SERVICES, SETTINGS),
    (("azure.eventgrid",), BUILD_SERVICES, {
        **SETTINGS, "ROTATOR_EVENTS_ENDPOINT": "https://rotator.westeurope-1.eventgrid.azure.net/api/events"}),
    (("azure.monitor.opentelemetry", "opentelemetry.sdk"),
     f"from handlers.observability import configure_tracing\nconfigure_tracing({CONNECTION!r})", {}),
    (("psycopg",), BUILD_TARGET.format(target="app-db"), SETTINGS),
    (("pymysql",), BUILD_TARGET.format(target="shop-db"), SETTINGS),
    (("kubernetes",), """
from rotation.propagation.access import ClusterDirectory
from rotation.settings import ClusterSource
ClusterDirectory([ClusterSource("in-cluster")], lambda vault, name: "", timeout_seconds=1.0)()
""", {}),
    (("yaml",), """
from rotation.dr import DrError, read_dr_versions
try:
    read_dr_versions("akv_rotator_dr_unencrypted: 1")
except DrError:
    pass  # not a sops file; it was read as YAML all the same
""", {}),
    (("re2",), """
from rotation.propagation.goregexp import compile_go
assert compile_go("^db$").search("db")
""", {}),
], ids=["table-journal", "event-grid", "azure-monitor", "postgresql", "mysql", "kubernetes",
        "dr-file", "go-regexp"])
def test_each_heavy_module_loads_when_used(loads: tuple[str, ...], use: str,
                                           env: dict[str, str]) -> None:
    found = run_fresh(use, **env)
    assert found["indexed"] == []
    assert set(loads) <= set(found["used"])


def test_quick_benchmark_reports_a_ratio_for_each_bytecode_setting() -> None:
    report = bench_cold_start(**QUICK)
    for result in (report.cached, report.source):
        assert result is not None
        assert result.ratio > 0
        assert result.ours.indexed > 0 and result.baseline.indexed > 0
        assert result.ours.wall > result.ours.indexed and result.baseline.wall > result.baseline.indexed
        assert "function_app" in result.ours.modules and "function_app" not in result.baseline.modules
        assert {"azure.identity", "azure.keyvault.secrets"} <= result.baseline.modules
        assert not set(HEAVY) & set(result.ours.modules)
    # What the deployment installs is never refused; the CLI's and the test tools' are.
    assert not {"azure", "structlog", "opentelemetry", "tenacity", "yaml", "re2", "psycopg",
                "pymysql", "kubernetes", "urllib3", "requests"} & report.hidden
    assert {"rich", "click", "pytest"} <= report.hidden
