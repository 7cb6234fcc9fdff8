"""The journal in an Azure Storage table (or Azurite). The only module importing azure.data.tables.

Rows map onto entities as they are (``PartitionKey`` = the secret's partition, ``RowKey`` =
the row), properties are the flat row data, and the entity's ETag is the row's etag. Every
write is one entity group transaction (``submit_transaction``): inserts are ``create``,
conditional writes are ``update`` with ``UpdateMode.REPLACE`` and ``IfNotModified``. The
table is created on first use. ``UseDevelopmentStorage=true`` means Azurite on its default
ports (the SDK expands it).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

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
from rotation.journal.base import Insert, Journal, Operation, StorageConflict, StoredRow
from rotation.journal.errors import JournalError, JournalUnavailable

_KEYS = frozenset({"PartitionKey", "RowKey"})
_TABLE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]{2,62}")
#: The SDK would retry 10 times over minutes; the caller's own retry (Event Grid, the
#: sweeper) is the better place to wait, so the journal gives up sooner.
_CLIENT_DEFAULTS: dict[str, Any] = {"retry_total": 3, "retry_backoff_max": 10,
                                    "connection_timeout": 10, "read_timeout": 30}


class TableJournal(Journal):
    """The journal in table ``table_name`` of the storage account ``connection_string`` names.

    ``client_options`` go to ``TableClient.from_connection_string`` over the journal's
    defaults (``retry_total=3``, ``retry_backoff_max=10``, ``connection_timeout=10``,
    ``read_timeout=30``). The connection string holds the account key: it is never
    shown by ``repr`` or in an error.
    """

    def __init__(self, connection_string: str, table_name: str = "rotations",
                 **client_options: Any) -> None:
        if not _TABLE_NAME.fullmatch(table_name):
            raise ConfigurationError([f"journal table name {table_name!r} is not 3-63 letters and "
                                      "digits starting with a letter"])
        self._connection_string = connection_string
        self.table_name = table_name
        self._client_options = {**_CLIENT_DEFAULTS, **client_options}
        self._client: TableClient | None = None
        self._client_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"TableJournal(table_name={self.table_name!r})"

    def shutdown(self) -> None:
        with self._client_lock:
            if self._client is not None:
                self._client.close()
                self._client = None

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
                try:
                    client = TableClient.from_connection_string(
                        self._connection_string, self.table_name, **self._client_options)
                except ValueError as exc:  # the SDK's word for a malformed connection string
                    raise ConfigurationError(
                        [f"the journal's table connection string is malformed: {exc}"]) from exc
                with _translated():
                    try:
                        client.create_table()
                    except ResourceExistsError:
                        pass
                self._client = client
            return self._client


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
    :class:`AccessDenied`; anything else is :class:`JournalError`.
    """
    status = getattr(exc, "status_code", None)
    if isinstance(exc, ResourceExistsError | ResourceModifiedError) or (
        isinstance(exc, TableTransactionError) and status in (404, 409, 412)
    ):
        return StorageConflict(f"table row condition failed ({status})")
    if isinstance(exc, ServiceRequestError | ServiceResponseError):
        return JournalUnavailable(f"journal table unreachable: {type(exc).__name__}")
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
