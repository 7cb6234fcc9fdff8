"""The journal over an identity-based storage connection, against Azurite with OAuth (HTTPS).

What the contract (``test_contract_identity.py``) does not show: a refused token is an error
the rotator handles, never a crash or a leaked token; and the production path — app settings,
the spec, ``open_journal``, ``DefaultAzureCredential`` — reaches the table with a token from
the managed identity endpoint App Service gives a Function App (``IDENTITY_ENDPOINT``), here a
small twin on loopback, for the system-assigned or a user-assigned identity.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from azure.core.exceptions import ClientAuthenticationError

from rotation.errors import AccessDenied
from rotation.journal import Begun, open_journal
from rotation.journal.tables import TableIdentity, TableJournal
from rotation.settings import Settings
from tests.journal.records import NOW, SECRET, TTL, VAULT, record
from tests.support.azurite import (
    AZURITE_TABLE,
    STORAGE_AUDIENCE,
    OAuthAzurite,
    UnsignedTokenCredential,
    running_azurite_oauth,
    unsigned_jwt,
)

CLIENT_ID = "0e7f0c2d-5b1a-4c3e-9f10-2a3b4c5d6e7f"
RESOURCE_ID = ("/subscriptions/6f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f/resourceGroups/rg-rotator/"
               "providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-rotator")
TARGETS = {"ROTATOR_TARGETS": json.dumps({"app-db": {
    "kind": "postgresql", "address": "postgresql://db.example.com/app",
    "logins": ["app"], "secrets": ["app-db"]}})}
#: Variables that would steer DefaultAzureCredential elsewhere than the managed identity.
AZURE_IDENTITY_VARIABLES = ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET",
                            "AZURE_CLIENT_CERTIFICATE_PATH", "AZURE_USERNAME",
                            "AZURE_FEDERATED_TOKEN_FILE", "MSI_ENDPOINT", "MSI_SECRET",
                            "IDENTITY_SERVER_THUMBPRINT", "IMDS_ENDPOINT",
                            "AZURE_POD_IDENTITY_AUTHORITY_HOST")


@pytest.fixture(scope="module")
def oauth_azurite() -> Iterator[OAuthAzurite]:
    if not AZURITE_TABLE.exists():
        pytest.fail(f"{AZURITE_TABLE} is missing: run `npm install --no-audit --no-fund` at the "
                    "repository root (`make test` does it) to install Azurite")
    with running_azurite_oauth() as server:
        yield server


def _table() -> str:
    return "t" + uuid.uuid4().hex[:16]


def _journal(server: OAuthAzurite, credential: Any) -> TableJournal:
    return TableJournal(TableIdentity(server.table_endpoint), table_name=_table(),
                        credential=credential, connection_verify=str(server.ca_path),
                        retry_total=0)


# ---- tokens Azurite refuses, credentials that fail ------------------------------------------

def test_a_token_for_another_audience_is_refused_and_reported_without_the_token(
        oauth_azurite: OAuthAzurite) -> None:
    credential = UnsignedTokenCredential(audience="https://vault.azure.net")
    journal = _journal(oauth_azurite, credential)
    with pytest.raises(AccessDenied) as caught:
        journal.active(VAULT, SECRET)
    assert "refused us (403)" in str(caught.value)
    assert isinstance(caught.value.__cause__, ClientAuthenticationError)
    assert "Invalid token audience" in str(caught.value.__cause__)  # Azurite's own reason
    shown = str(caught.value) + repr(caught.value) + repr(journal)
    assert credential.issued and not any(token in shown for token in credential.issued)
    journal.shutdown()


def test_an_expired_token_is_refused_too(oauth_azurite: OAuthAzurite) -> None:
    class Expired(UnsignedTokenCredential):
        def get_token(self, *scopes: str, **kwargs: Any) -> Any:
            token = super().get_token(*scopes, **kwargs)
            stale = unsigned_jwt(STORAGE_AUDIENCE, now=int(time.time()) - 7200)
            return type(token)(stale, token.expires_on)

    with pytest.raises(AccessDenied, match=r"\(403\)"):
        _journal(oauth_azurite, Expired()).active(VAULT, SECRET)


def test_a_credential_that_gets_no_token_is_access_denied_not_a_crash(
        oauth_azurite: OAuthAzurite) -> None:
    class NoIdentity:
        def get_token(self, *scopes: str, **kwargs: Any) -> Any:
            raise ClientAuthenticationError("ManagedIdentityCredential: no identity endpoint")

    with pytest.raises(AccessDenied, match=r"could not get a token .*ClientAuthenticationError"):
        _journal(oauth_azurite, NoIdentity()).active(VAULT, SECRET)


def test_the_journal_asks_only_for_azure_storage_tokens(oauth_azurite: OAuthAzurite) -> None:
    credential = UnsignedTokenCredential()
    journal = _journal(oauth_azurite, credential)
    outcome = journal.begin(record(), now=NOW)
    assert isinstance(outcome, Begun)
    claimed = journal.claim(outcome.record, owner="w1", now=NOW, ttl=TTL)
    closed = journal.close(claimed, now=NOW, status="succeeded")
    assert journal.for_secret(VAULT, SECRET) == [closed]
    assert journal.unfinished() == []
    assert set(credential.scopes) == {("https://storage.azure.com/.default",)}
    journal.shutdown()


# ---- the production path, with App Service's managed identity endpoint --------------------

@dataclass
class IdentityEndpoint:
    """App Service's managed identity endpoint (``IDENTITY_ENDPOINT``/``IDENTITY_HEADER``),
    as azure-identity calls it: ``GET ?api-version=2019-08-01&resource=…[&client_id=…|
    &mi_res_id=…]`` with ``X-IDENTITY-HEADER``; it answers unsigned JWTs for the resource."""

    server: ThreadingHTTPServer
    header: str
    requests: list[dict[str, list[str]]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/msi/token"


@pytest.fixture
def identity_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[IdentityEndpoint]:
    header = uuid.uuid4().hex

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            query = parse_qs(urlsplit(self.path).query)
            endpoint.requests.append(query)
            if self.headers.get("X-IDENTITY-HEADER") != header or "resource" not in query:
                self.send_response(400)
                self.end_headers()
                return
            resource = query["resource"][0]
            body = json.dumps({"access_token": unsigned_jwt(resource), "token_type": "Bearer",
                               "expires_on": str(int(time.time()) + 3600),
                               "resource": resource}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    endpoint = IdentityEndpoint(ThreadingHTTPServer(("127.0.0.1", 0), Handler), header)
    thread = threading.Thread(target=endpoint.server.serve_forever, daemon=True)
    thread.start()
    for name in AZURE_IDENTITY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("IDENTITY_ENDPOINT", endpoint.url)
    monkeypatch.setenv("IDENTITY_HEADER", header)
    try:
        yield endpoint
    finally:
        endpoint.server.shutdown()
        endpoint.server.server_close()
        thread.join(timeout=5)


@pytest.mark.parametrize(("identity", "expected"), [
    ({}, {}),
    ({"AzureWebJobsStorage__credential": "managedidentity",
      "AzureWebJobsStorage__clientId": CLIENT_ID}, {"client_id": [CLIENT_ID]}),
    ({"AzureWebJobsStorage__credential": "managedidentity",
      "AzureWebJobsStorage__managedIdentityResourceId": RESOURCE_ID}, {"mi_res_id": [RESOURCE_ID]}),
], ids=["system-assigned", "client-id", "resource-id"])
def test_settings_reach_the_table_with_the_managed_identity(
        oauth_azurite: OAuthAzurite, identity_endpoint: IdentityEndpoint,
        monkeypatch: pytest.MonkeyPatch, identity: dict[str, str],
        expected: dict[str, list[str]]) -> None:
    # The journal has no CA setting of its own: Azurite's test CA is trusted for this test only.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(oauth_azurite.ca_path))
    settings = Settings.from_env({
        **TARGETS, "ROTATOR_VAULTS": "kv1", "ROTATOR_JOURNAL": "table",
        "ROTATOR_JOURNAL_TABLE": _table(),
        "AzureWebJobsStorage__tableServiceUri": oauth_azurite.table_endpoint + "/",
        "AzureWebJobsStorage__accountName": "ignoredwhenuriisset", **identity})
    journal = open_journal(settings.protocol.journal)
    assert isinstance(journal, TableJournal) and journal.identity is not None
    assert journal.identity.endpoint == oauth_azurite.table_endpoint
    assert not identity_endpoint.requests  # nothing is fetched before first use

    outcome = journal.begin(record(), now=NOW)
    assert isinstance(outcome, Begun)
    assert journal.for_secret(VAULT, SECRET) == [outcome.record]
    journal.shutdown()

    assert identity_endpoint.requests, "the token came from the managed identity endpoint"
    for query in identity_endpoint.requests:
        assert query["resource"] == [STORAGE_AUDIENCE]
        chosen = {key: value for key, value in query.items()
                  if key in ("client_id", "mi_res_id", "object_id", "principal_id")}
        assert chosen == expected
