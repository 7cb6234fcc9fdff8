"""``akv-rotator consumers``: which ExternalSecrets a rotation of one secret will touch.

Runs the propagation's own matching (:mod:`rotation.propagation.matching`) on the objects of
a GitOps repository (``--manifests DIR``) or a live cluster (``--kubeconfig FILE``), so a
team can see before a rotation which ExternalSecrets will be annotated, which will be
reported (pinned to a version, never refreshed) and why the others are skipped::

    akv-rotator consumers --vault-url https://kv-prod.vault.azure.net --secret app-db \\
        --tag team=a --manifests ./deploy
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any, TextIO

import click

from rotation.cli.context import output_option
from rotation.propagation.matching import Verdict, match

COLUMNS = ("ACTION", "NAMESPACE", "KIND", "NAME", "SECRET", "REASON")


@click.command(help=(__doc__ or "").split("\n\n")[1].replace("\n", " "))
@click.option("--vault-url", required=True, help="the vault, https://NAME.vault.azure.net")
@click.option("--secret", required=True, help="the Key Vault secret's name")
@click.option("--tag", "tag", multiple=True, metavar="KEY=VALUE",
              help="a tag of the secret (repeatable), for dataFrom.find.tags")
@click.option("--manifests", type=click.Path(path_type=Path), metavar="DIR",
              help="read every YAML file under DIR (multi-document, any layout)")
@click.option("--kubeconfig", type=click.Path(path_type=Path), metavar="FILE", help="read a live cluster")
@click.option("--context", "kube_context", help="the kubeconfig context (default: its current one)")
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of a table")
@output_option
def consumers(*, vault_url: str, secret: str, tag: tuple[str, ...], manifests: Path | None,
              kubeconfig: Path | None, kube_context: str | None, as_json: bool, output: str) -> int:
    """List the ExternalSecrets that consume a Key Vault secret."""
    if (manifests is None) == (kubeconfig is None):
        raise click.UsageError("give exactly one of --manifests DIR or --kubeconfig FILE")
    return run(argparse.Namespace(vault_url=vault_url, secret=secret, tag=list(tag),
                                  manifests=manifests, kubeconfig=kubeconfig, context=kube_context,
                                  json=as_json or output == "json"))


def run(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """0 when the objects were read and judged; 2 for bad input, with what was wrong."""
    out, err = out or sys.stdout, err or sys.stderr
    tags, problems = _tags(args.tag)
    if problems:
        print("akv-rotator consumers: " + "; ".join(problems), file=err)
        return 2
    try:
        objects = _objects(args, err)
        verdicts = match(args.vault_url, args.secret, tags, objects)
    except ValueError as exc:  # a bad --vault-url or --manifests, a kubeconfig it cannot use
        print(f"akv-rotator consumers: {exc}", file=err)
        return 2
    if args.json:
        json.dump([asdict(v) for v in verdicts], out, indent=2)
        out.write("\n")
    else:
        _table(verdicts, out)
    return 0


def _tags(pairs: list[str]) -> tuple[dict[str, str], list[str]]:
    tags: dict[str, str] = {}
    problems = [f"--tag {pair!r} is not KEY=VALUE" for pair in pairs if "=" not in pair]
    for pair in pairs:
        key, _, value = pair.partition("=")
        if key:
            tags[key] = value
    return tags, problems


def _objects(args: argparse.Namespace, err: TextIO) -> list[Any]:
    if args.manifests is not None:
        from rotation.propagation.manifests import load_manifests

        loaded = load_manifests(args.manifests)
        for skipped in loaded.skipped:
            print(f"skipped {skipped}", file=err)
        return list(loaded.objects)
    from rotation.propagation.cluster import ClusterError, client_from_kubeconfig, eso_objects

    try:
        return eso_objects(client_from_kubeconfig(args.kubeconfig, args.context))
    except ClusterError as exc:
        raise ValueError(str(exc)) from None


def _table(verdicts: list[Verdict], out: TextIO) -> None:
    rows = [(v.action, v.namespace or "-", v.kind, v.name, v.target_secret,
             v.reason.split(": ", 1)[-1]) for v in verdicts]
    widths = [max(len(str(row[i])) for row in [COLUMNS, *rows]) for i in range(len(COLUMNS) - 1)]
    for row in [COLUMNS, *rows]:
        cells = [str(cell).ljust(width) for cell, width in zip(row[:-1], widths, strict=True)]
        out.write("  ".join([*cells, str(row[-1])]).rstrip() + "\n")
    if not verdicts:
        out.write("no ExternalSecret or ClusterExternalSecret found\n")
