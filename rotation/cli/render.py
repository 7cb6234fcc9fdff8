"""Tables for people (Rich) and JSON for scripts, from the same answers.

Every table is drawn from the JSON the command would print with ``--output json``, so the
two never carry different facts. Times are UTC, as the journal keeps them.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from rotation.journal.model import STEPS

_STATUS_STYLE = {"pass": "green", "ok": "green", "succeeded": "green", "warn": "yellow",
                 "attention": "yellow", "fail": "red", "failed": "red", "skip": "dim"}


def console() -> Console:
    """stdout, looked up now (tests and callers may have swapped it)."""
    return Console(file=sys.stdout, highlight=False, soft_wrap=False)


def print_json(document: object) -> None:
    sys.stdout.write(json.dumps(document, indent=2, sort_keys=False) + "\n")


def styled(word: str | None) -> Text:
    return Text(word or "-", style=_STATUS_STYLE.get(word or "", ""))


def plan_table(plan: dict[str, Any]) -> Group:
    where = f"{plan['vault']}/{plan['secret']}"
    head = Text.assemble("plan for ", (where, "bold"), f"  version {plan.get('version') or '-'}",
                         f"  target {plan.get('target') or '-'}",
                         f" ({plan.get('strategy')})" if plan.get("strategy") else "",
                         "  verdict ", styled(plan["verdict"]))
    table = Table("CHECK", "STATUS", "SUBJECT", "DETAIL", box=None, pad_edge=False)
    for check in plan["checks"]:
        table.add_row(check["check"], styled(check["status"]), check.get("subject") or "",
                      check["detail"])
    return Group(head, table)


def status_table(status: dict[str, Any]) -> Table:
    table = Table("VAULT", "SECRET", "TARGET", "KIND", "STRATEGY", "AGE", "EXPIRES", "IN",
                  "STATE", "LAST ROTATION", "OPEN ROTATION", box=None, pad_edge=False,
                  title=f"{len(status['secrets'])} opted-in secrets, {status['generatedAt']}",
                  title_justify="left")
    for row in status["secrets"]:
        last = row.get("lastRotation") or {}
        open_ = row.get("openRotation") or {}
        table.add_row(
            row["vault"], row["secret"], row["target"], row.get("kind") or "unknown",
            row.get("strategy") or "-", _days(row.get("versionAgeDays")),
            _date(row.get("expiresOn")) or "never", _days(row.get("expiresInDays")),
            styled(row["state"]),
            f"{last['status']} {_date(last.get('finishedAt')) or ''}".strip() if last else "-",
            f"{open_['rotationId'][:8]} {open_['status']} ({open_['step']})" if open_ else "-")
    return table


def history_table(secret: str, rotations: Sequence[dict[str, Any]]) -> Table:
    table = Table("ROTATION", "STARTED", "STATUS", "STEP", "TRIGGER", "FROM", "TO", "ERROR",
                  box=None, pad_edge=False, title=f"rotations of {secret}, newest first",
                  title_justify="left")
    for r in rotations:
        table.add_row(r["rotationId"], _time(r.get("startedAt")), styled(r["status"]), r["step"],
                      r["trigger"]["source"], _short(r.get("oldVersion")),
                      _short(r.get("newVersion")), r.get("lastError") or "")
    return table


def rotation_view(r: dict[str, Any]) -> Group:
    """One rotation: its facts, its steps (done, and the one it is at), its consumers."""
    facts = Table(box=None, show_header=False, pad_edge=False)
    for label, value in (
            ("rotation", r["rotationId"]), ("secret", f"{r['vault']}/{r['secret']}"),
            ("status", styled(r["status"])), ("purpose", r.get("purpose")),
            ("trigger", f"{r['trigger']['source']} {r['trigger']['reference']}"),
            ("versions", f"{r.get('oldVersion') or '-'} -> {r.get('newVersion') or '-'}"),
            ("new expiry", r.get("newExpiry")), ("attempts", str(r.get("attempts"))),
            ("retire after", r.get("retireAfter")), ("next attempt", r.get("nextAttemptAt")),
            ("error", r.get("lastError")), ("leftovers", r.get("leftovers")),
            ("events", ", ".join(r.get("eventsPublished") or []) or None)):
        if value:
            facts.add_row(label, value)
    parts: list[Any] = [facts, steps_table(r)]
    consumers = (r.get("propagation") or {}).get("consumers")
    if consumers:
        parts.append(_consumers_table(consumers))
    return Group(*parts)


def steps_table(r: dict[str, Any]) -> Table:
    done = {s["step"]: s for s in r.get("steps") or []}
    at = STEPS.index(r["step"]) if r["step"] in STEPS else 0
    table = Table("STEP", "", "COMPLETED", "MS", "ATTEMPT", box=None, pad_edge=False)
    for index, step in enumerate(STEPS[1:], 1):
        timing = done.get(step)
        if timing:
            mark = Text("done", style="green")
        elif index <= at:
            mark = Text("skipped", style="dim")
        elif index == at + 1 and r["status"] not in ("succeeded", "failed", "superseded"):
            mark = Text(r["status"], style="yellow")
        else:
            mark = Text("")
        table.add_row(step, mark, _time(timing["completedAt"]) if timing else "",
                      f"{timing['durationMs']:.0f}" if timing else "",
                      str(timing["attempt"]) if timing else "")
    return table


def _consumers_table(consumers: Iterable[dict[str, Any]]) -> Table:
    table = Table("CLUSTER", "NAMESPACE", "KIND", "NAME", "STATE", "SYNCED", "ROLLED OUT",
                  box=None, pad_edge=False, title="consumers", title_justify="left")
    for c in consumers:
        table.add_row(c.get("cluster", ""), c.get("namespace", ""), c.get("kind", ""),
                      c.get("name", ""), c.get("state", ""), _time(c.get("syncedAt")),
                      _time(c.get("rolloutDoneAt")))
    return table


def _days(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}d"


def _date(iso: str | None) -> str:
    return iso[:10] if iso else ""


def _time(iso: str | None) -> str:
    if not iso:
        return ""
    try:
        return datetime.fromisoformat(iso).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return iso


def _short(version: str | None) -> str:
    return (version or "-")[:12]
