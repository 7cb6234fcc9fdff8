"""``akv-rotator dr export`` and ``dr check``: the break-glass DR file (:mod:`rotation.dr`).

``export`` reads the current value of every secret tagged ``rotator-dr=true`` with the
operator's own identity and writes a sops file encrypted to age recipients (stdout, or
``--out`` created with mode 0600). ``check`` reads only the file's clear fields (no key) and
lists what moved on in Key Vault since the export: exit 3 when anything is stale.
"""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime
from pathlib import Path

import click
from rich.table import Table

from rotation.cli import render
from rotation.cli.context import output_option, state
from rotation.cli.exits import CliError, Exit
from rotation.dr import DrEntry, DrError, export_dr, read_dr_versions, stale_entries, wants_dr
from rotation.errors import RotatorError
from rotation.keyvault import KeyVaultSecrets


@click.group()
def dr() -> None:
    """The sops-encrypted break-glass file of the secrets tagged rotator-dr=true."""


@dr.command()
@click.option("--age", "recipients", multiple=True, required=True, metavar="RECIPIENT",
              help="an age public key (age1...); repeat for each key holder")
@click.option("--vault", metavar="NAME", help="one vault (default: every configured vault)")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="write here (mode 0600) instead of stdout")
def export(recipients: tuple[str, ...], vault: str | None, out: Path | None) -> int:
    """Write the DR file: every rotator-dr secret's current value, encrypted with sops."""
    backend = state().local("dr export")
    entries: list[DrEntry] = []
    for name in backend.vault_names(vault):
        kv = backend.keyvault(name)
        for summary in kv.list_secrets():
            if summary.enabled and wants_dr(summary.tags):
                current = kv.latest(summary.name)
                entries.append(DrEntry(name, current.name, current.version, current.value,
                                       current.content_type))
    if not entries:
        raise CliError("no enabled secret is tagged rotator-dr=true: nothing to export")
    text = export_dr(entries, recipients, now=datetime.now(UTC))
    if out is None:
        sys.stdout.write(text)
    else:
        descriptor = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(text)
    click.echo(f"exported {len(entries)} secrets for {len(recipients)} recipients", err=True)
    return Exit.OK


@dr.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--vault", metavar="NAME", help="one vault (default: every configured vault)")
@output_option
def check(file: Path, vault: str | None, output: str) -> int:
    """List the secrets whose Key Vault version moved on since the file was written."""
    try:
        exported_at, listed = read_dr_versions(file.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"{file}: {type(exc).__name__}", Exit.USAGE) from None
    except DrError as exc:
        raise CliError(f"{file}: {exc}", Exit.USAGE) from None
    backend = state().local("dr check")
    current: dict[tuple[str, str], str | None] = {}
    tagged: list[tuple[str, str]] = []
    in_file = {(item.vault.lower(), item.name.lower()) for item in listed}
    for name in backend.vault_names(vault):
        kv = backend.keyvault(name)
        for summary in kv.list_secrets():
            key = (name, summary.name.lower())
            if wants_dr(summary.tags) and summary.enabled:
                tagged.append(key)
            if key in in_file:
                current[key] = _current_version(kv, summary.name) if summary.enabled else None
    scope = set(backend.vault_names(vault))
    stale = stale_entries([item for item in listed if item.vault.lower() in scope], current, tagged)
    report = {"file": str(file), "exportedAt": exported_at.isoformat(timespec="seconds")
              if exported_at else None, "secrets": len(listed),
              "stale": [{"vault": s.vault, "secret": s.name, "fileVersion": s.file_version,
                         "currentVersion": s.current_version, "reason": s.reason} for s in stale]}
    if output == "json":
        render.print_json(report)
    elif not stale:
        render.console().print(f"{file}: all {len(listed)} secrets are current "
                               f"(exported {report['exportedAt']})")
    else:
        table = Table("VAULT", "SECRET", "IN FILE", "IN KEY VAULT", "WHY", box=None, pad_edge=False,
                      title=f"{file}: {len(stale)} of {len(listed)} stale; export again",
                      title_justify="left")
        for s in stale:
            table.add_row(s.vault, s.name, s.file_version or "-", s.current_version or "-", s.reason)
        render.console().print(table)
    return Exit.ATTENTION if stale else Exit.OK


def _current_version(kv: KeyVaultSecrets, name: str) -> str | None:
    """The current version's id, from the version listing (properties only) when creation times
    tell. Key Vault's ``created`` is in whole seconds and it lists versions by id, so when the
    newest second holds several versions only Key Vault knows which is current: then the
    latest version is read (its value is dropped, never shown)."""
    try:
        versions = kv.versions(name)
        if not versions:
            return None
        if len([v for v in versions if v.created_on == versions[-1].created_on]) > 1:
            return kv.latest(name).version
    except RotatorError:
        return None
    return versions[-1].version if versions else None
