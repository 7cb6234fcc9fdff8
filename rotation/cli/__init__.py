"""``akv-rotator``: the operator's command line.

One console script (also ``python -m rotation.cli``), one subcommand per task, each in its own
module of this package. Direct mode builds the same core the Functions app runs, with the
operator's own Azure identity; ``--api URL`` talks to a deployed app's HTTP API instead.
Exit codes: :mod:`rotation.cli.exits`.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

import click

from rotation.cli import consumers, dr, onboard, operate
from rotation.cli.context import CliState
from rotation.cli.exits import CliError, Exit
from rotation.errors import ConfigurationError, InvalidRequest, RotatorError


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--api", metavar="URL", envvar="AKV_ROTATOR_API",
              help="a deployed app's base URL; the function key comes from AKV_ROTATOR_FUNCTION_KEY")
@click.option("--settings", "settings_file", metavar="FILE",
              type=click.Path(dir_okay=False, path_type=__import__("pathlib").Path),
              help="a local.settings.json whose Values are the app settings (else the environment)")
@click.option("-v", "--verbose", is_flag=True, help="log the rotator's INFO lines to stderr")
@click.pass_context
def cli(ctx: click.Context, api: str | None, settings_file: object, verbose: bool) -> None:
    """Rotate, plan and inspect Key Vault credential rotations."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    ctx.obj = CliState(api=api, settings_file=settings_file)  # type: ignore[arg-type]


for command in (*operate.COMMANDS, onboard.onboard, dr.dr, consumers.consumers):
    cli.add_command(command)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; its exit code (:class:`~rotation.cli.exits.Exit`)."""
    try:
        result = cli.main(args=list(argv) if argv is not None else None, prog_name="akv-rotator",
                          standalone_mode=False)
    except click.UsageError as exc:
        exc.show()
        return Exit.USAGE
    except click.Abort:
        click.echo("aborted", err=True)
        return Exit.FAILED
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except CliError as exc:
        click.echo(f"akv-rotator: {exc}", err=True)
        return exc.code
    except (InvalidRequest, ConfigurationError) as exc:
        click.echo(f"akv-rotator: {exc}", err=True)
        return Exit.USAGE
    except RotatorError as exc:
        click.echo(f"akv-rotator: {type(exc).__name__}: {exc}", err=True)
        return Exit.FAILED
    return int(result) if isinstance(result, int) else Exit.OK


if __name__ == "__main__":
    sys.exit(main())
