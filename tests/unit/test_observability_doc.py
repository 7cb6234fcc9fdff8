"""docs/observability.md names only what the code emits: KQL cannot run here, so every log
message, field and metric a query or table names is checked against the source."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "observability.md"
SOURCES = [*(ROOT / "rotation").rglob("*.py"), *(ROOT / "handlers").rglob("*.py")]
LOG_METHODS = {"debug", "info", "warning", "error", "exception", "critical"}
METRIC_FACTORIES = {"create_counter", "create_histogram", "create_observable_gauge",
                    "create_up_down_counter", "create_gauge"}
CONTEXT_BINDERS = {"bound_contextvars", "bind_contextvars", "rotation_context"}


class Emitted:
    """What the code can put in front of Application Insights, read from its syntax tree."""

    def __init__(self) -> None:
        self.messages: set[str] = set()
        self.fields: set[str] = set()
        self.metrics: dict[str, str] = {}
        self.attributes: set[str] = set()
        for path in SOURCES:
            for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
                if isinstance(node, ast.Call):
                    self._call(node)
                elif isinstance(node, ast.Dict):  # metric attribute dicts
                    self.attributes.update(k.value for k in node.keys if isinstance(k, ast.Constant)
                                           and isinstance(k.value, str) and k.value.startswith("rotator."))

    def _call(self, node: ast.Call) -> None:
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        args = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
        if name in LOG_METHODS and args:
            self.messages.add(args[0])
        if name == "log" and len(node.args) > 1 and isinstance(node.args[1], ast.Constant):
            self.messages.add(str(node.args[1].value))
        for keyword in node.keywords:
            if keyword.arg == "extra" and isinstance(keyword.value, ast.Dict):
                self.fields.update(k.value for k in keyword.value.keys
                                   if isinstance(k, ast.Constant) and isinstance(k.value, str))
            if name in CONTEXT_BINDERS and keyword.arg:
                self.fields.add(keyword.arg)
            if name in METRIC_FACTORIES and keyword.arg == "unit" and args \
                    and isinstance(keyword.value, ast.Constant):
                self.metrics[args[0]] = str(keyword.value.value)


def kusto_blocks() -> list[str]:
    return re.findall(r"```kusto\n(.*?)```", DOC.read_text(), flags=re.S)


def test_the_page_has_the_queries_the_issue_asks_for() -> None:
    text = DOC.read_text()
    assert len(kusto_blocks()) >= 4
    for topic in ("Failed rotations", "p50 and p95 per target kind", "expiring within",
                  "refused by the vault allowlist"):
        assert topic in text, topic


def test_every_name_a_query_uses_is_emitted() -> None:
    emitted = Emitted()
    for block in kusto_blocks():
        for message in re.findall(r'message == "([^"]+)"', block):
            assert message in emitted.messages, f"no log line says {message!r}"
        for metric in re.findall(r'name == "([^"]+)"', block):
            assert metric in emitted.metrics, f"no metric named {metric!r}"
        fields = re.findall(r'customDimensions\.(\w+)', block) + re.findall(
            r'customDimensions\["([^"]+)"\]', block)
        assert fields
        for field in fields:
            assert field in emitted.fields or field in emitted.attributes, f"nothing emits {field!r}"


def test_every_metric_in_the_table_is_emitted_with_that_unit() -> None:
    emitted = Emitted()
    rows = re.findall(r"^\| `(rotator\.[a-z_.]+)` \| `([^`]+)` \| ([^|]+) \|", DOC.read_text(), flags=re.M)
    assert {name for name, _, _ in rows} == set(emitted.metrics), "the table lists every metric"
    for name, unit, attributes in rows:
        assert emitted.metrics[name] == unit, name
        for attribute in re.findall(r"`(rotator\.[a-z_.]+)`", attributes):
            assert attribute in emitted.attributes, f"{name}: nothing emits {attribute!r}"


def test_every_log_line_in_the_table_is_emitted_with_its_fields() -> None:
    emitted = Emitted()
    rows = re.findall(r"^\| `([a-z][a-z ]+)` \| ([^|]+) \|", DOC.read_text(), flags=re.M)
    assert len(rows) >= 5
    for message, fields in rows:
        assert message in emitted.messages, f"no log line says {message!r}"
        for field in re.findall(r"`([a-z_]+)`", fields):
            assert field in emitted.fields, f"{message}: nothing emits {field!r}"
