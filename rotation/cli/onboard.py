"""``akv-rotator onboard``: opt a secret in with one safe command.

The tags are composed, the plan's checks run with them against the target, and only when
nothing fails are they written as a new version with the same value and an expiry. The
target is the id of one the operator declared (``ROTATOR_TARGETS``): tags only select, they
never say where a credential goes (ADR 0005). ``--address`` is a cross-check of that
declaration, never a setting.
"""

from __future__ import annotations

from datetime import UTC, datetime

import click
from rich.table import Table

from rotation.cli import render
from rotation.cli.context import output_option, state
from rotation.cli.exits import CliError, Exit
from rotation.onboarding import OptIn
from rotation.onboarding import onboard as run_onboarding


@click.command()
@click.argument("name")
@click.option("--target", "target_id", required=True, metavar="ID",
              help="a target the operator declared in ROTATOR_TARGETS")
@click.option("--vault", metavar="NAME", help="the vault (needed when several are configured)")
@click.option("--address", metavar="URL", help="refuse unless the declared target points here")
@click.option("--username", help="the login to rotate (else the value's username)")
@click.option("--strategy", help="one of the strategies the target allows")
@click.option("--validity-days", type=click.IntRange(1, 3650), help="lifetime of each new version")
@click.option("--grace-hours", type=click.FloatRange(0, 720))
@click.option("--max-grace-hours", type=click.FloatRange(0, 720))
@click.option("--expires-in-days", type=click.FloatRange(1, 3650),
              help="the new version's expiry (default: the current one's, else a full lifetime)")
@click.option("--dr", is_flag=True, help="tag it rotator-dr=true: it belongs in the DR file")
@click.option("--dry-run", is_flag=True, help="show the tags and the checks; write nothing")
@output_option
def onboard(*, name: str, target_id: str, vault: str | None, address: str | None,
            username: str | None, strategy: str | None, validity_days: int | None,
            grace_hours: float | None, max_grace_hours: float | None,
            expires_in_days: float | None, dr: bool, dry_run: bool, output: str) -> int:
    """Opt a secret in: check its tags and credential against the target, then write them."""
    backend = state().local("onboard")
    where = backend.vault(vault)
    definition = backend.settings.targets.targets.get(target_id.strip().lower())
    if definition is None:
        known = ", ".join(sorted(backend.settings.targets.targets)) or "none"
        raise CliError(f"no target {target_id!r} is declared (ROTATOR_TARGETS; known: {known})",
                       Exit.USAGE)
    if address is not None and address.strip().rstrip("/") != definition.address.rstrip("/"):
        raise CliError(f"target {definition.target_id!r} points at {definition.address}, not "
                       f"{address}; the operator's declaration decides where credentials go",
                       Exit.USAGE)
    wanted = OptIn(target=definition.target_id, username=username, strategy=strategy,
                   validity_days=validity_days, grace_hours=grace_hours,
                   max_grace_hours=max_grace_hours, dr=dr, expires_in_days=expires_in_days)
    done = run_onboarding(backend.keyvault(where), backend.services.preflight, backend.settings,
                          name, wanted, now=datetime.now(UTC), write=not dry_run)
    written = None if done.written is None else {
        "version": done.written.version,
        "expiresOn": done.expires_on.isoformat(timespec="seconds")}
    if output == "json":
        render.print_json({"tags": done.tags, "expiresOn": done.expires_on.isoformat(timespec="seconds"),
                           "dryRun": dry_run, "plan": done.plan.public(), "written": written})
    else:
        out = render.console()
        tags = Table("TAG", "VALUE", box=None, pad_edge=False,
                     title=f"tags {'it would write' if dry_run else 'to write'} on {where}/{name}",
                     title_justify="left")
        for key, value in sorted(done.tags.items()):
            tags.add_row(key, value)
        out.print(tags)
        out.print(render.plan_table(done.plan.public()))
        if written:
            out.print(f"wrote version {written['version']}, expires {written['expiresOn']}")
        elif not dry_run:
            out.print("nothing written: a check failed")
    if done.plan.verdict == "failed":
        return Exit.FAILED
    return Exit.ATTENTION if done.plan.verdict == "attention" else Exit.OK
