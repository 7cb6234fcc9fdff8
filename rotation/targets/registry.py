"""A plain registry from target kind to the module that implements it.

The registry names modules as strings and imports them on first use, so the Functions app
never loads a database driver it does not need, and reading tags (which needs only the kinds
and their strategies) imports no driver at all.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rotation.targets.base import Target, TargetContext


@dataclass(frozen=True, slots=True)
class TargetSpec:
    """A target kind: where its code lives and which rotation strategies it supports."""

    module: str
    factory: str
    strategies: tuple[str, ...]

    @property
    def default_strategy(self) -> str:
        return self.strategies[0]


TARGET_KINDS: dict[str, TargetSpec] = {
    "postgresql": TargetSpec("rotation.targets.postgres", "PostgresTarget", ("single-user",)),
}


def build_target(context: TargetContext) -> Target:
    """Import the kind's module on first use and build its target for ``context``."""
    spec = TARGET_KINDS[context.binding.target_kind]
    module = importlib.import_module(spec.module)
    factory = getattr(module, spec.factory)
    target: Target = factory(context)
    return target
