"""What every command is given: the mode (direct or ``--api``) and its backend, built once."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import click

Output = Literal["table", "json"]

output_option = click.option(
    "-o", "--output", type=click.Choice(["table", "json"]), default="table", show_default=True,
    help="a table for people, or JSON (the same facts) for scripts")


@dataclass
class CliState:
    api: str | None
    settings_file: Path | None
    _backend: Any = field(default=None, repr=False)

    def backend(self) -> Any:
        """The API backend with ``--api``, else the core with the app's settings."""
        if self._backend is None:
            if self.api:
                from rotation.cli.api import ApiBackend

                self._backend = ApiBackend(self.api)
            else:
                from rotation.cli.local import LocalBackend, load_settings

                self._backend = LocalBackend(load_settings(self.settings_file))
        return self._backend

    def local(self, what: str) -> Any:
        """The direct backend, for commands that need the operator's own identity."""
        from rotation.cli.exits import CliError, Exit

        if self.api:
            raise CliError(f"{what} works with your own Azure identity: run it without --api",
                           Exit.USAGE)
        return self.backend()


def state() -> CliState:
    obj = click.get_current_context().find_object(CliState)
    assert obj is not None  # the group always sets it
    return obj
