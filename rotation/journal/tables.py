"""The journal in an Azure Storage table (or Azurite). The only module importing azure.data.tables.

Rows map onto entities as they are (``PartitionKey`` = the secret's partition, ``RowKey`` =
the row), properties are the flat row data, and the entity's ETag is the row's etag. Every
write is one entity group transaction (``submit_transaction``): inserts are ``create``,
conditional writes are ``update`` with ``UpdateMode.REPLACE`` and ``IfNotModified``. The
table is created on first use. ``UseDevelopmentStorage=true`` means Azurite on its default
ports (the SDK expands it).

Two ways in: the account's connection string (it holds the account key), or a
:class:`TableIdentity` — the table service's https endpoint and the app's identity, as
Azure Functions' identity-based ``AzureWebJobsStorage__*`` settings describe it. The identity
needs the RBAC role "Storage Table Data Contributor" on the account (the journal creates its
table). Its credential is built on first use, so azure-identity loads only for this form.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.data.tables import TableClient, TableTransactionError, UpdateMode

from rotation.errors import AccessDenied, ConfigurationError, RotatorError
from rotation.journal import identity_problems
from rotation.journal.base import Insert, Journal, Operation, StorageConflict, StoredRow
from rotation.journal.codec import RowData
from rotation.journal.errors import JournalError, JournalUnavailable

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

_KEYS = frozenset({"PartitionKey", "RowKey"})
_TABLE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]{2,62}")
#: The SDK would retry 10 times over minutes; the caller's own retry (Event Grid, the
#: sweeper) is the better place to wait, so the journal gives up sooner.
_CLIENT_DEFAULTS: dict[str, Any] = {"retry_total": 3, "retry_backoff_max": 10,
                                    "connection_timeout": 10, "read_timeout": 30}
#: Inserts in flight at once when a sweep marks its work (TableJournal._insert_each).
INSERT_THREADS = 8


@dataclass(frozen=True, slots=True)
class TableIdentity:
    """A table service reached with the app's identity rather than an account key.

    ``endpoint`` is the service's https URL (``https://<account>.table.core.windows.net``, or
    Azurite's path-style ``https://127.0.0.1:<port>/devstoreaccount1``). ``client_id`` or
    ``resource_id`` names a user-assigned managed identity; with neither, the system-assigned
    one (in Azure) or the developer's sign-in (locally) is used. Checked on construction
    (:func:`rotation.journal.identity_problems`); nothing here is secret.
    """

    endpoint: str
    client_id: str | None = None
    resource_id: str | None = None

    def __post_init__(self) -> None:
        problems = identity_problems(self.endpoint, self.client_id, self.resource_id)
        if problems:
            raise ConfigurationError(problems)
        object.__setattr__(self, "endpoint", self.endpoint.strip().rstrip("/"))

    def credential(self) -> TokenCredential:
        """The credential production uses (:func:`rotation.identity.storage_credential`)."""
        from rotation.identity import storage_credential

        return storage_credential(self.client_id, self.resource_id)


class TableJournal(Journal):
    """The journal in table ``table_name`` of a storage account: ``connection`` is the
    account's connection string, or a :class:`TableIdentity` (its endpoint, reached with the
    app's identity).

    ``client_options`` go to the ``TableClient`` over the journal's defaults
    (``retry_total=3``, ``retry_backoff_max=10``, ``connection_timeout=10``,
    ``read_timeout=30``). ``credential`` replaces the one a :class:`TableIdentity` would build
    (a tool's own, or a test's); it has no place beside a connection string. The connection
    string holds the account key: it is never shown by ``repr`` or in an error.
    """

    def __init__(self, connection: str | TableIdentity, table_name: str = "rotations", *,
                 credential: TokenCredential | None = None, **client_options: Any) -> None:
        if not _TABLE_NAME.fullmatch(table_name):
            raise ConfigurationError([f"journal table name {table_name!r} is not 3-63 letters and "
                                      "digits starting with a letter"])
        if credential is not None and not isinstance(connection, TableIdentity):
            raise ConfigurationError(["a credential is for a journal reached with an identity "
                                      "(TableIdentity), not with a connection string"])
        self._connection = connection
        self._given_credential = credential
        self._built_credential: Any = None  # built here on first use, so closed here
        self.table_name = table_name
        self._client_options = {**_CLIENT_DEFAULTS, **client_options}
        self._client: TableClient | None = None
        self._client_lock = threading.Lock()

    @property
    def identity(self) -> TableIdentity | None:
        """How the journal reaches its table with the app's identity; None for a connection
        string (which is never exposed)."""
        return self._connection if isinstance(self._connection, TableIdentity) else None

    def __repr__(self) -> str:
        if self.identity is not None:
            return f"TableJournal(table_name={self.table_name!r}, endpoint={self.identity.endpoint!r})"
        return f"TableJournal(table_name={self.table_name!r})"

    def shutdown(self) -> None:
        with self._client_lock:
            if self._client is not None:
                self._client.close()
                self._client = None
            if self._built_credential is not None:
                self._built_credential.close()
                self._built_credential = None

    def _get(self, partition: str, row: str) -> StoredRow | None:
        client = self._table()
        with _translated():
            try:
                entity = client.get_entity(partition, row)
            except ResourceNotFoundError:
                return None
        return _stored(entity)

    def _transact(self, partition: str, ops: Sequence[Operation]) -> dict[str, str]:
        batch: list[Any] = []
        for op in ops:
            entity = {"PartitionKey": partition, "RowKey": op.row, **op.data}
            if isinstance(op, Insert):
                batch.append(("create", entity))
            else:
                batch.append(("update", entity, {"mode": UpdateMode.REPLACE, "etag": op.etag,
                                                  "match_condition": MatchConditions.IfNotModified}))
        client = self._table()
        with _translated():
            results = client.submit_transaction(batch)
        return {op.row: str(result["etag"]) for op, result in zip(ops, results, strict=True)}

    def _insert_each(self, rows: Sequence[tuple[str, str, RowData]]) -> list[bool]:
        """One insert per row, as the base class does (an entity group transaction spans one
        partition and fails whole when one entity exists), but :data:`INSERT_THREADS` at a
        time: each is a round trip of some milliseconds spent waiting, and a sweep marks
        hundreds (the client is thread-safe, as every Azure SDK client)."""
        if len(rows) <= 1:
            return super()._insert_each(rows)
        # A row given twice is inserted once, by its first mention, as one after another would.
        firsts: dict[tuple[str, str], tuple[str, str, RowData]] = {}
        for partition, row, data in rows:
            firsts.setdefault((partition, row), (partition, row, data))
        with ThreadPoolExecutor(min(INSERT_THREADS, len(firsts)),
                                thread_name_prefix="journal-insert") as pool:
            inserted = dict(zip(firsts, pool.map(lambda one: Journal._insert_each(self, [one])[0],
                                                 firsts.values()), strict=True))
        return [inserted.pop((partition, row), False) for partition, row, _data in rows]

    def _query(self, partition: str | None, row_prefix: str) -> list[StoredRow]:
        upper = row_prefix[:-1] + chr(ord(row_prefix[-1]) + 1)
        query = "RowKey ge @lower and RowKey lt @upper"
        parameters = {"lower": row_prefix, "upper": upper}
        if partition is not None:
            query = "PartitionKey eq @partition and " + query
            parameters["partition"] = partition
        client = self._table()
        with _translated():
            return [_stored(entity)
                    for entity in client.query_entities(query, parameters=parameters)]

    def _table(self) -> TableClient:
        """The client, built and the table created on first use."""
        with self._client_lock:
            if self._client is None:
                client = self._new_client()
                with _translated():
                    try:
                        client.create_table()
                    except ResourceExistsError:
                        pass
                self._client = client
            return self._client

    def _new_client(self) -> TableClient:
        """A client for the connection string, or for the endpoint with the identity's
        credential (built now, on first use, unless one was given)."""
        connection = self._connection
        if not isinstance(connection, TableIdentity):
            try:
                return TableClient.from_connection_string(connection, self.table_name,
                                                          **self._client_options)
            except ValueError as exc:  # the SDK's word for a malformed connection string
                raise ConfigurationError(
                    [f"the journal's table connection string is malformed: {exc}"]) from exc
        credential = (self._given_credential if self._given_credential is not None
                      else self._built_credential)
        if credential is None:
            try:
                credential = self._built_credential = connection.credential()
            except ValueError as exc:  # azure-identity's word for a bad identity option
                raise ConfigurationError([f"the journal's identity cannot be used: {exc}"]) from exc
        try:
            return TableClient(connection.endpoint, self.table_name, credential=credential,
                               **self._client_options)
        except ValueError as exc:
            raise ConfigurationError([f"the journal's table endpoint cannot be used: {exc}"]) from exc


def _stored(entity: Mapping[str, Any]) -> StoredRow:
    metadata: Mapping[str, Any] = getattr(entity, "metadata", {})
    data = {key: value for key, value in entity.items() if key not in _KEYS}
    return StoredRow(str(entity["PartitionKey"]), str(entity["RowKey"]), data,
                     str(metadata["etag"]))


@contextmanager
def _translated() -> Iterator[None]:
    """Run the body with azure-core's errors translated by :func:`_translate`."""
    try:
        yield
    except AzureError as exc:
        raise _translate(exc) from exc


def _translate(exc: AzureError) -> Exception:
    """The one place Azure Tables errors become the journal's.

    A failed condition (409 exists, 412 etag, 404 row gone inside a transaction) is the
    internal conflict; unreachable, throttled (429) or failing (5xx, 408) storage is
    :class:`JournalUnavailable` with the server's ``Retry-After``; 401/403 is
    :class:`AccessDenied`, and so is a credential that could not get a token (no managed
    identity here, no developer sign-in: a setup problem, not a passing one); anything else
    is :class:`JournalError`. Messages carry the status and the error's type, never a token.
    """
    status = getattr(exc, "status_code", None)
    if isinstance(exc, ResourceExistsError | ResourceModifiedError) or (
        isinstance(exc, TableTransactionError) and status in (404, 409, 412)
    ):
        return StorageConflict(f"table row condition failed ({status})")
    if isinstance(exc, ServiceRequestError | ServiceResponseError):
        return JournalUnavailable(f"journal table unreachable: {type(exc).__name__}")
    if isinstance(exc, ClientAuthenticationError) and status is None:
        return AccessDenied("the journal could not get a token for its storage account: "
                            f"{type(exc).__name__}")
    if isinstance(exc, ClientAuthenticationError) or status in (401, 403):
        return AccessDenied(f"the journal's storage account refused us ({status})")
    if isinstance(exc, HttpResponseError) and status is not None and (
        status in (408, 429) or status >= 500
    ):
        return JournalUnavailable(f"journal table answered {status}",
                                  retry_after=_retry_after(exc))
    error: RotatorError = JournalError(f"journal table refused the request: {type(exc).__name__} "
                                       f"{status if status is not None else ''}".rstrip())
    return error


def _retry_after(exc: HttpResponseError) -> float | None:
    headers: Mapping[str, str] = getattr(exc.response, "headers", None) or {}
    value = headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
