"""What every command is given: the mode (direct or ``--api``) and its backend, built once."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import click

if TYPE_CHECKING:
    from rotation.cli.local import LocalBackend

Output = Literal["table", "json"]

output_option = click.option(
    "-o", "--output", type=click.Choice(["table", "json"]), default="table", show_default=True,
    help="a table for people, or JSON (the same facts) for scripts")


StepListener = Callable[[dict[str, Any]], None]


class Backend(Protocol):
    """What both modes offer; every answer is the HTTP API's JSON for the same question."""

    mode: str

    def plan(self, vault: str | None, secret: str,
             tags: Mapping[str, str] | None = None) -> dict[str, Any]: ...

    def due(self, vault: str | None, days: float) -> list[tuple[str, str]]: ...

    def status(self, vault: str | None,
               progress: Callable[[int, int | None], None] | None = None) -> dict[str, Any]: ...

    def rotate(self, vault: str | None, secret: str, reason: str | None,
               listener: StepListener | None = None) -> dict[str, Any]: ...

    def history(self, vault: str | None, secret: str, limit: int) -> list[dict[str, Any]]: ...

    def show(self, rotation_id: str) -> dict[str, Any]: ...

    def advance(self, rotation_id: str, listener: StepListener | None = None) -> dict[str, Any]: ...


@dataclass
class CliState:
    api: str | None
    settings_file: Path | None
    _backend: Backend | None = field(default=None, repr=False)

    def backend(self) -> Backend:
        """The API backend with ``--api``, else the core with the app's settings."""
        if self._backend is None:
            if self.api:
                from rotation.cli.api import ApiBackend

                self._backend = ApiBackend(self.api)
            else:
                from rotation.cli.local import LocalBackend, load_settings

                self._backend = LocalBackend(load_settings(self.settings_file))
        return self._backend

    def local(self, what: str) -> LocalBackend:
        """The direct backend, for commands that need the operator's own identity."""
        from rotation.cli.exits import CliError, Exit
        from rotation.cli.local import LocalBackend

        if self.api:
            raise CliError(f"{what} works with your own Azure identity: run it without --api",
                           Exit.USAGE)
        backend = self.backend()
        assert isinstance(backend, LocalBackend)
        return backend


def state() -> CliState:
    obj = click.get_current_context().find_object(CliState)
    assert obj is not None  # the group always sets it
    return obj
