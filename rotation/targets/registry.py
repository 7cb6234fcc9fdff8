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
    """A target kind: its module, and the class implementing each strategy it supports.

    The first strategy is the default. ``needs_admin`` lists strategies that cannot work
    without an admin credential (``rotator-admin-secret``).
    """

    module: str
    strategies: dict[str, str]
    needs_admin: frozenset[str] = frozenset()

    @property
    def default_strategy(self) -> str:
        return next(iter(self.strategies))


TARGET_KINDS: dict[str, TargetSpec] = {
    "postgresql": TargetSpec(
        "rotation.targets.postgres",
        {"single-user": "PostgresTarget", "alternating-users": "PostgresAlternatingUsersTarget"},
        needs_admin=frozenset({"alternating-users"}),
    ),
}


def build_target(context: TargetContext) -> Target:
    """Import the kind's module on first use and build its strategy's target for ``context``."""
    spec = TARGET_KINDS[context.binding.target_kind]
    module = importlib.import_module(spec.module)
    factory = getattr(module, spec.strategies[context.binding.strategy])
    target: Target = factory(context)
    return target
