"""The rotation journal: a durable record of every rotation, never of a value.

A worker that dies mid-rotation is resumed by another (leases with expiry), a duplicate or
replayed event starts nothing new (one rotation per rotated-from version), and operators can
read the history. :class:`Journal` (in :mod:`rotation.journal.base`) holds every rule; the
backends store rows:

- :class:`MemoryJournal` — in this process (tests, ``memory:``);
- :class:`SqliteJournal` — one SQLite file shared by processes (``sqlite:/path/file.db``);
- ``rotation.journal.tables.TableJournal`` — an Azure Storage table, reached with the
  account's connection string (``table:<connection string>``) or with the app's identity
  (``table:<table>:uri=<https table endpoint>``, no key anywhere), imported on demand so
  azure-data-tables (and azure-identity) load only when they are used.

Build one from an app setting with :func:`open_journal`; :func:`table_identity_spec` writes
the identity form, checked by :func:`identity_problems`. Errors: :mod:`rotation.journal.errors`.
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
from rotation.urls import UnsafeUrl, checked_https_url

if TYPE_CHECKING:
    from rotation.journal.tables import TableIdentity, TableJournal

SPEC_FORMS = ("memory:", "sqlite:<path>", "table:[<table>:]<connection string>",
              "table:[<table>:]uri=<https table endpoint>[;managedIdentityClientId=<client ID>]"
              "[;managedIdentityResourceId=<resource ID>]")
#: What follows ``table:[<table>:]`` when the journal is reached with the app's identity.
IDENTITY_PREFIX = "uri="
#: The spec's options, each naming the user-assigned managed identity to use (one at most).
CLIENT_ID_OPTION = "managedIdentityClientId"
RESOURCE_ID_OPTION = "managedIdentityResourceId"
_TABLE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]{2,62}")
_CLIENT_ID = re.compile(r"[0-9A-Fa-f]{8}(?:-[0-9A-Fa-f]{4}){3}-[0-9A-Fa-f]{12}")
_RESOURCE_ID = re.compile(r"/subscriptions/[^/;\s]+/resourceGroups/[^/;\s]+/providers/"
                          r"Microsoft\.ManagedIdentity/userAssignedIdentities/[^/;\s]+", re.IGNORECASE)


def open_journal(spec: str) -> Journal:
    """The journal a setting names: ``memory:``, ``sqlite:<path>``, ``table:<connection
    string>`` (table ``rotations``) or ``table:<table>:<connection string>``
    (``table:UseDevelopmentStorage=true`` is Azurite on its default ports), or a table reached
    with the app's identity: ``table:<table>:uri=<https table endpoint>``, optionally followed
    by ``;managedIdentityClientId=<client ID>`` or ``;managedIdentityResourceId=<resource ID>``
    for a user-assigned identity (see :func:`table_identity_spec`).
    Opens nothing yet: each backend connects (and builds its credential) on first use. A
    connection string is never echoed in an error."""
    scheme, sep, rest = spec.partition(":")
    scheme = scheme.strip().lower()
    if sep and scheme == "memory" and not rest.strip():
        return MemoryJournal()
    if sep and scheme == "sqlite" and rest.strip():
        return SqliteJournal(rest.strip())
    if sep and scheme == "table" and rest.strip():
        from rotation.journal.tables import TableJournal

        table, named, connection = rest.strip().partition(":")
        if not (named and _TABLE_NAME.fullmatch(table)):
            table, connection = "rotations", rest.strip()
        if connection.strip()[:len(IDENTITY_PREFIX)].lower() == IDENTITY_PREFIX:
            return TableJournal(_identity(connection.strip()), table_name=table)
        return TableJournal(connection.strip(), table_name=table)
    shown = scheme if scheme in ("memory", "sqlite", "table") else "an unknown form"
    raise ConfigurationError([f"journal must be one of {', '.join(SPEC_FORMS)}; got {shown}"])


def table_identity_spec(table: str, endpoint: str, *, client_id: str | None = None,
                        resource_id: str | None = None) -> str:
    """The spec of table ``table`` at the table service ``endpoint``, reached with the app's
    identity: ``DefaultAzureCredential`` (the system-assigned managed identity in Azure, the
    developer's sign-in locally), or the user-assigned identity ``client_id`` names (passed as
    ``managed_identity_client_id``), or ``ManagedIdentityCredential`` for ``resource_id``.

    Raises :class:`ConfigurationError` with :func:`identity_problems`' findings.
    """
    problems = identity_problems(endpoint, client_id, resource_id)
    if not _TABLE_NAME.fullmatch(table):
        problems.append(f"journal table name {table!r} is not 3-63 letters and digits starting "
                        "with a letter")
    if problems:
        raise ConfigurationError(problems)
    url = checked_https_url(endpoint, what="the journal's table endpoint")
    spec = f"table:{table}:{IDENTITY_PREFIX}{url}"
    if client_id:
        spec += f";{CLIENT_ID_OPTION}={client_id}"
    if resource_id:
        spec += f";{RESOURCE_ID_OPTION}={resource_id}"
    return spec


def identity_problems(endpoint: str, client_id: str | None = None, resource_id: str | None = None,
                      *, endpoint_name: str = "the journal's table endpoint",
                      client_id_name: str = CLIENT_ID_OPTION,
                      resource_id_name: str = RESOURCE_ID_OPTION) -> list[str]:
    """What is wrong with an identity-based table connection (``[]`` when nothing), naming
    each value as the caller calls it (the app settings do; values are not echoed).

    The endpoint must be a plain ``https://host[:port][/path]`` URL (:mod:`rotation.urls`):
    bearer tokens travel only over TLS, so even Azurite on loopback needs HTTPS (``--oauth
    basic --cert``). A user-assigned identity is named by a client ID (a GUID) or a resource
    ID, never both (Microsoft's rule for identity-based connections).
    """
    problems: list[str] = []
    try:
        checked_https_url(endpoint, what=endpoint_name)
    except UnsafeUrl as exc:
        hint = ""
        if endpoint.strip().lower().startswith("http://"):
            hint = (": a bearer token is only sent over TLS (for Azurite, run it with "
                    "--oauth basic --cert/--key and use https://127.0.0.1:<port>/devstoreaccount1)")
        problems.append(f"{exc}{hint}")
    else:
        if ";" in endpoint:
            problems.append(f"{endpoint_name} must not contain ';'")
    if client_id and resource_id:
        problems.append(f"set {client_id_name} or {resource_id_name}, not both: each names the "
                        "user-assigned identity to use")
    if client_id and not _CLIENT_ID.fullmatch(client_id):
        problems.append(f"{client_id_name} must be the client ID (a GUID) of a user-assigned "
                        "managed identity")
    if resource_id and not _RESOURCE_ID.fullmatch(resource_id):
        problems.append(f"{resource_id_name} must be a user-assigned identity's resource ID "
                        "(/subscriptions/…/providers/Microsoft.ManagedIdentity/"
                        "userAssignedIdentities/<name>)")
    return problems


def _identity(text: str) -> TableIdentity:
    """``uri=<endpoint>[;<option>=<value>]…`` as a checked :class:`TableIdentity`."""
    from rotation.journal.tables import TableIdentity

    head, *options = text.split(";")
    values: dict[str, str] = {}
    names = {CLIENT_ID_OPTION.lower(): "client_id", RESOURCE_ID_OPTION.lower(): "resource_id"}
    for option in (part.strip() for part in options):
        if not option:
            continue
        key, equals, value = (piece.strip() for piece in option.partition("="))
        name = names.get(key.lower())
        if not equals or name is None or name in values:
            raise ConfigurationError([
                f"journal spec: {key!r} is not an option of the identity form, or is repeated; "
                f"the form is {SPEC_FORMS[-1]}"])
        values[name] = value
    return TableIdentity(head[len(IDENTITY_PREFIX):].strip(), **values)


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
    "TableIdentity",
    "TableJournal",
    "TriggerSource",
    "identity_problems",
    "open_journal",
    "partition_key",
    "table_identity_spec",
]


def __getattr__(name: str) -> object:
    if name in ("TableJournal", "TableIdentity"):  # imported on demand: loads azure-data-tables
        from rotation.journal import tables

        return getattr(tables, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
