"""The journal's contract once more, over an identity-based connection (no account key).

Every test of :mod:`tests.journal.test_contract` is collected here again, and this module's
``journal_factory`` (which the ``journal`` fixture uses) builds ``TableJournal`` over a
``TableIdentity``: Azurite's Table service with ``--oauth basic`` over HTTPS, reached with
bearer tokens for ``https://storage.azure.com`` (unsigned: Azurite checks issuer, audience
and lifetime, not signatures). The other backends' parameters do not apply here.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from rotation.journal import Journal
from rotation.journal.tables import TableIdentity, TableJournal
from tests.journal.conftest import JournalFactory
from tests.journal.test_contract import *  # noqa: F403 - the contract, collected with this module's journal_factory
from tests.support.azurite import (
    AZURITE_TABLE,
    OAuthAzurite,
    UnsignedTokenCredential,
    running_azurite_oauth,
)

STORAGE_SCOPE = ("https://storage.azure.com/.default",)


@pytest.fixture(scope="module")
def oauth_azurite() -> Iterator[OAuthAzurite]:
    if not AZURITE_TABLE.exists():
        pytest.fail(f"{AZURITE_TABLE} is missing: run `npm install --no-audit --no-fund` at the "
                    "repository root (`make test` does it) to install Azurite")
    with running_azurite_oauth() as server:
        yield server


@pytest.fixture
def journal_factory(oauth_azurite: OAuthAzurite) -> Iterator[JournalFactory]:
    """Journals on one table of the OAuth Azurite, as separate workers with one identity."""
    table = "t" + uuid.uuid4().hex[:16]
    credential = UnsignedTokenCredential()
    made: list[Journal] = []

    def factory() -> Journal:
        journal = TableJournal(TableIdentity(oauth_azurite.table_endpoint), table_name=table,
                               credential=credential, connection_verify=str(oauth_azurite.ca_path))
        made.append(journal)
        return journal

    yield factory
    for journal in made:
        journal.shutdown()
    # Every request went with a token for Azure Storage's audience, and nothing else was asked.
    assert set(credential.scopes) <= {STORAGE_SCOPE}
