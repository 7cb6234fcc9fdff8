"""Kubernetes objects from YAML files, as a GitOps repository holds them.

Any layout: every ``*.yaml``/``*.yml`` file under a directory, multi-document files, and
``kind: List`` wrappers. A file that is not YAML (a Helm template, say) is skipped with the
reason, never fatal: the point is to show a team what a rotation will touch, from whatever
the repository holds.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

SUFFIXES = (".yaml", ".yml")


@dataclass
class Loaded:
    """The objects read, and the files that could not be read with why."""

    objects: list[Mapping[str, object]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def load_manifests(directory: Path) -> Loaded:
    """Every object of every YAML file under ``directory``, in path order."""
    if not directory.is_dir():
        raise ValueError(f"{directory} is not a directory")
    loaded = Loaded()
    for path in sorted(p for p in directory.rglob("*") if p.suffix in SUFFIXES and p.is_file()):
        try:
            documents = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            loaded.skipped.append(f"{path}: not YAML ({first_line})")
            continue
        loaded.objects.extend(_objects(documents))
    return loaded


def _objects(documents: list[object]) -> Iterator[Mapping[str, object]]:
    for document in documents:
        if not isinstance(document, dict):
            continue
        items = document.get("items")
        if str(document.get("kind", "")).endswith("List") and isinstance(items, list):
            yield from (item for item in items if isinstance(item, dict))
        else:
            yield document
