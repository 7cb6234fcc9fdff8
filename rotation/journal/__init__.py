"""The rotation journal: a durable record of every rotation, never of a value.

A worker that dies mid-rotation is resumed by another (leases with expiry), a duplicate or
replayed event starts nothing new (one rotation per rotated-from version), and operators can
read the history. :class:`Journal` (in :mod:`rotation.journal.base`) holds every rule; the
backends store rows:

- :class:`MemoryJournal` — in this process (tests, ``memory:``);
- :class:`SqliteJournal` — one SQLite file shared by processes (``sqlite:/path/file.db``);
- ``rotation.journal.tables.TableJournal`` — an Azure Storage table (``table:<connection
  string>``), imported on demand so azure-data-tables loads only when it is used.

Build one from an app setting with :func:`open_journal`. Errors: :mod:`rotation.journal.errors`.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from rotation.errors import ConfigurationError
from rotation.journal.base import BeginOutcome, Begun, Busy, Duplicate, Journal, partition_key
from rotation.journal.errors import (
    InvalidTransition,
    JournalConflict,
    JournalError,
    JournalUnavailable,
    LeaseHeld,
    LeaseLost,
    NotYetDue,
    RotationFinished,
    RotationNotFound,
)
from rotation.journal.memory import MemoryJournal
from rotation.journal.model import (
    STEPS,
    UNFINISHED,
    RotationRecord,
    Status,
    Step,
    StepTiming,
    TriggerSource,
)
from rotation.journal.sqlite import SqliteJournal

if TYPE_CHECKING:
    from rotation.journal.tables import TableJournal

SPEC_FORMS = ("memory:", "sqlite:<path>", "table:<connection string>")


def open_journal(spec: str) -> Journal:
    """The journal a setting names: ``memory:``, ``sqlite:<path>``, ``table:<connection
    string>`` (table ``rotations``) or ``table:<table>:<connection string>``
    (``table:UseDevelopmentStorage=true`` is Azurite on its default ports).
    Opens nothing yet: each backend connects on first use. A connection string is never
    echoed in an error."""
    scheme, sep, rest = spec.partition(":")
    scheme = scheme.strip().lower()
    if sep and scheme == "memory" and not rest.strip():
        return MemoryJournal()
    if sep and scheme == "sqlite" and rest.strip():
        return SqliteJournal(rest.strip())
    if sep and scheme == "table" and rest.strip():
        from rotation.journal.tables import TableJournal

        table, named, connection = rest.strip().partition(":")
        if named and re.fullmatch(r"[A-Za-z][A-Za-z0-9]{2,62}", table) and "=" not in table:
            return TableJournal(connection.strip(), table_name=table)
        return TableJournal(rest.strip())
    shown = scheme if scheme in ("memory", "sqlite", "table") else "an unknown form"
    raise ConfigurationError([f"journal must be one of {', '.join(SPEC_FORMS)}; got {shown}"])


__all__ = [
    "STEPS",
    "UNFINISHED",
    "BeginOutcome",
    "Begun",
    "Busy",
    "Duplicate",
    "InvalidTransition",
    "Journal",
    "JournalConflict",
    "JournalError",
    "JournalUnavailable",
    "LeaseHeld",
    "LeaseLost",
    "MemoryJournal",
    "NotYetDue",
    "RotationFinished",
    "RotationNotFound",
    "RotationRecord",
    "SqliteJournal",
    "Status",
    "Step",
    "StepTiming",
    "TableJournal",
    "TriggerSource",
    "open_journal",
    "partition_key",
]


def __getattr__(name: str) -> object:
    if name == "TableJournal":  # imported on demand: it loads azure-data-tables
        from rotation.journal.tables import TableJournal

        return TableJournal
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
