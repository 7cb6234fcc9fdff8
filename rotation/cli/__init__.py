"""``akv-rotator``: the operator's command line.

One console script with subcommands; each lives in its own module of this package and
uses the same core the Functions app uses, so what the CLI shows is what a rotation does.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from rotation.cli import consumers


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run one subcommand; its exit code."""
    parser = argparse.ArgumentParser(prog="akv-rotator", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    consumers.register(commands)
    args = parser.parse_args(argv)
    result: int = args.run(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
