"""``plan``, ``status``, ``rotate``, ``history``, ``show`` and ``retry``: the day-to-day commands.

Each works in both modes (direct, or ``--api``) and prints a table or, with ``--output json``,
the API's own JSON. None ever prints a secret value: the answers carry ids and versions only.
"""

from __future__ import annotations

import re
import time
from typing import Any

import click
from rich.console import Console
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from rotation.cli import render
from rotation.cli.context import output_option, state
from rotation.cli.exits import CliError, Exit, worst

_ROTATION_ID = re.compile(r"^[0-9a-f]{32}$")
_UNFINISHED = frozenset({"running", "awaiting-propagation", "awaiting-retirement",
                         "cleanup-pending", "needs-repair"})
_PARKED_ATTENTION = frozenset({"needs-repair", "cleanup-pending"})
vault_option = click.option("--vault", metavar="NAME",
                            help="the vault (needed when several are configured)")


@click.command()
@click.argument("secrets", nargs=-1, metavar="[SECRET]...")
@vault_option
@click.option("--days", type=click.FloatRange(0, 3650), default=30.0, show_default=True,
              help="without SECRET: plan every opted-in secret expiring within this many days")
@output_option
def plan(*, secrets: tuple[str, ...], vault: str | None, days: float, output: str) -> int:
    """Check what a rotation would do, changing nothing (exit 3 on warnings, 1 on failures)."""
    backend = state().backend()
    targets = [(vault, s) for s in secrets] if secrets else backend.due(vault, days)
    plans = [backend.plan(where, secret) for where, secret in targets]
    if output == "json":
        render.print_json({"plans": plans})
    elif not plans:
        click.echo(f"no opted-in secret expires within {days:g} days")
    else:
        out = render.console()
        for one in plans:
            out.print(render.plan_table(one))
            out.print()
    verdicts = {"ok": Exit.OK, "attention": Exit.ATTENTION, "failed": Exit.FAILED}
    return worst(*(verdicts[p["verdict"]] for p in plans))


@click.command()
@vault_option
@output_option
def status(*, vault: str | None, output: str) -> int:
    """Every opted-in secret: target, version age, expiry, last and open rotations (exit 3
    when one needs a person: failed, parked for repair, expired, unknown target)."""
    backend = state().backend()
    if output == "json" or backend.mode != "direct":  # the API answers in one piece
        answer = backend.status(vault)
    else:
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                      console=Console(stderr=True), transient=True) as bar:
            task = bar.add_task("listing secrets", total=None)

            def advance(done: int, total: int | None) -> None:
                what = "listing secrets" if total is None else "reading the journal"
                bar.update(task, description=what, completed=done, total=total)

            answer = backend.status(vault, progress=advance)
    if output == "json":
        render.print_json(answer)
    else:
        render.console().print(render.status_table(answer))
    needs = [row for row in answer["secrets"] if _needs_attention(row)]
    return Exit.ATTENTION if needs else Exit.OK


def _needs_attention(row: dict[str, Any]) -> bool:
    expired = row.get("expiresInDays") is not None and row["expiresInDays"] < 0
    return row["state"] in ("failed", *_PARKED_ATTENTION) or expired or row.get("kind") is None


@click.command()
@click.argument("name")
@vault_option
@click.option("--reason", help="why, for the audit trail (at most 200 printable characters)")
@click.option("--wait", is_flag=True, help="show the steps live and follow the rotation through "
                                           "propagation and retirement until it finishes")
@click.option("--timeout", type=click.FloatRange(1), default=3600.0, show_default=True,
              help="with --wait: give up waiting after this many seconds (exit 3)")
@click.option("--poll", type=click.FloatRange(0.1, 600), default=5.0, show_default=True,
              help="with --wait: seconds between looks")
@output_option
def rotate(*, name: str, vault: str | None, reason: str | None, wait: bool, timeout: float,
           poll: float, output: str) -> int:
    """Rotate a secret now."""
    _check_reason(reason)
    return _rotate_and_report(name, vault, reason, wait=wait, timeout=timeout, poll=poll,
                              output=output)


@click.command()
@click.argument("name")
@vault_option
@click.option("--limit", type=click.IntRange(1, 200), default=20, show_default=True)
@output_option
def history(*, name: str, vault: str | None, limit: int, output: str) -> int:
    """A secret's rotations, newest first."""
    rotations = state().backend().history(vault, name, limit)
    if output == "json":
        render.print_json({"secret": name, "rotations": rotations})
    else:
        render.console().print(render.history_table(name, rotations))
    return Exit.OK


@click.command()
@click.argument("rotation_id")
@output_option
def show(*, rotation_id: str, output: str) -> int:
    """One rotation: its steps, timings, consumers and outcome."""
    record = state().backend().show(_rotation_id(rotation_id))
    _print_rotation(record, output)
    return _rotation_exit(record)


@click.command()
@click.argument("rotation_id")
@click.option("--reason", help="why, for the audit trail")
@click.option("--wait", is_flag=True, help="as for rotate")
@click.option("--timeout", type=click.FloatRange(1), default=3600.0, show_default=True)
@click.option("--poll", type=click.FloatRange(0.1, 600), default=5.0, show_default=True)
@output_option
def retry(*, rotation_id: str, reason: str | None, wait: bool, timeout: float, poll: float,
          output: str) -> int:
    """Start a failed rotation again, once a person has read its error and fixed the cause.

    The plan runs first: retry refuses when the secret's version moved on since (the failed
    rotation is moot; rotate instead) or when a check still fails.
    """
    _check_reason(reason)
    backend = state().backend()
    failed = backend.show(_rotation_id(rotation_id))
    if failed["status"] != "failed":
        raise CliError(f"rotation {rotation_id} is {failed['status']}, not failed: only a failed "
                       "rotation is retried", Exit.USAGE)
    preflight = backend.plan(failed["vault"], failed["secret"])
    if preflight.get("version") != failed["oldVersion"]:
        raise CliError(f"{failed['secret']} is at version {preflight.get('version')} now, not "
                       f"{failed['oldVersion']} that rotation {rotation_id} started from: nothing "
                       "to retry (use rotate for a new rotation)")
    if preflight["verdict"] == "failed":
        if output == "table":
            render.console().print(render.plan_table(preflight))
        raise CliError("the plan still fails; fix what it says before retrying")
    why = f"retry of {rotation_id}" + (f": {reason}" if reason else "")
    return _rotate_and_report(failed["secret"], failed["vault"], why[:200], wait=wait,
                              timeout=timeout, poll=poll, output=output)


COMMANDS = (plan, status, rotate, history, show, retry)


# -- shared --------------------------------------------------------------------------------


def _rotate_and_report(name: str, vault: str | None, reason: str | None, *, wait: bool,
                       timeout: float, poll: float, output: str) -> int:
    backend = state().backend()
    if not wait:
        record = backend.rotate(vault, name, reason)
        _print_rotation(record, output)
        return _rotation_exit(record)
    deadline = time.monotonic() + timeout
    live_view = output == "table"
    with Live(console=render.console(), auto_refresh=False, transient=False) as live:
        def show_now(current: dict[str, Any]) -> None:
            if live_view:
                live.update(render.rotation_view(current), refresh=True)

        record = backend.rotate(vault, name, reason, listener=show_now)
        show_now(record)
        while record["status"] in _UNFINISHED and time.monotonic() < deadline:
            time.sleep(min(poll, max(deadline - time.monotonic(), 0.0)))
            record = backend.advance(record["rotationId"], listener=show_now)
            show_now(record)
    if output == "json":
        render.print_json(record)
    if record["status"] in _UNFINISHED:
        click.echo(f"still {record['status']} after {timeout:g} s; follow it with "
                   f"`akv-rotator show {record['rotationId']}`", err=True)
        return Exit.ATTENTION
    return _rotation_exit(record)


def _print_rotation(record: dict[str, Any], output: str) -> None:
    if output == "json":
        render.print_json(record)
    else:
        render.console().print(render.rotation_view(record))


def _rotation_exit(record: dict[str, Any]) -> int:
    if record["status"] == "failed":
        return Exit.FAILED
    return Exit.ATTENTION if record["status"] in _PARKED_ATTENTION else Exit.OK


def _rotation_id(text: str) -> str:
    if not _ROTATION_ID.fullmatch(text):
        raise CliError(f"{text[:64]!r} is not a rotation id (32 hex characters)", Exit.USAGE)
    return text


def _check_reason(reason: str | None) -> None:
    if reason is not None and (len(reason) > 200 or not reason.isprintable()):
        raise CliError("--reason must be at most 200 printable characters", Exit.USAGE)
