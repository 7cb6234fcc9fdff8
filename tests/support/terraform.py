"""Terraform read as data (python-hcl2), for the wiring tests of ``infra/terraform``.

python-hcl2 keeps HCL's quoting: a quoted key or string comes out with its quotes, an
expression as ``${...}``, and blocks carry an ``__is_block__`` marker. :func:`load_module`
turns a folder of ``.tf`` files into plain values: quotes dropped, markers dropped,
expressions left as ``${...}`` text to be matched, never evaluated.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hcl2


@dataclass(frozen=True)
class Resource:
    type: str
    name: str
    body: dict[str, Any]

    @property
    def address(self) -> str:
        return f"{self.type}.{self.name}"


@dataclass
class Module:
    """Every resource, local and variable of one folder of ``.tf`` files."""

    files: list[Path] = field(default_factory=list)
    resources: list[Resource] = field(default_factory=list)
    locals: dict[str, Any] = field(default_factory=dict)
    variables: dict[str, dict[str, Any]] = field(default_factory=dict)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)

    def of_type(self, kind: str) -> list[Resource]:
        return [r for r in self.resources if r.type == kind]


def unquote(value: Any) -> Any:
    """HCL's quoting off every key and string, block markers dropped, recursively."""
    if isinstance(value, str):
        return value[1:-1] if len(value) >= 2 and value[0] == value[-1] == '"' else value
    if isinstance(value, list):
        return [unquote(item) for item in value]
    if isinstance(value, dict):
        return {unquote(k): unquote(v) for k, v in value.items() if k != "__is_block__"}
    return value


def parse(path: Path) -> dict[str, Any]:
    """One file, as python-hcl2 reads it (raises on a syntax error)."""
    with path.open() as handle:
        document: dict[str, Any] = hcl2.load(handle)
    return document


def load_module(folder: Path) -> Module:
    module = Module()
    for path in sorted(folder.glob("*.tf")):
        module.files.append(path)
        document = unquote(parse(path))
        for block in document.get("resource", []):
            for kind, named in block.items():
                for name, body in named.items():
                    module.resources.append(Resource(kind, name, body))
        for block in document.get("locals", []):
            module.locals.update(block)
        for block in document.get("variable", []):
            module.variables.update(block)
        for block in document.get("output", []):
            module.outputs.update(block)
    return module
