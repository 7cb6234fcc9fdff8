"""Where the journal's table is, from Azure Functions' storage settings; no servers needed.

``AzureWebJobsStorage`` (a connection string) as before, or the identity-based settings as
Microsoft documents them for host storage: ``AzureWebJobsStorage__tableServiceUri`` or
``__accountName``, with ``__credential=managedidentity`` and ``__clientId`` (or
``__managedIdentityResourceId``) for a user-assigned identity. The Azurite tests in
``tests/journal/test_identity.py`` show the same settings reaching a table.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from azure.core.exceptions import ClientAuthenticationError

from rotation.errors import AccessDenied, ConfigurationError
from rotation.journal import TableIdentity, open_journal, table_identity_spec
from rotation.journal.tables import TableJournal, _translate
from rotation.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
BASE = {"ROTATOR_VAULTS": "kv1", "ROTATOR_TARGETS": json.dumps({"app-db": {
    "kind": "postgresql", "address": "postgresql://db.example.com/app",
    "logins": ["app"], "secrets": ["app-db"]}})}
KEY = "c2VjcmV0LWFjY291bnQta2V5LW5ldmVyLXNob3du"
CONNECTION = (f"DefaultEndpointsProtocol=https;AccountName=stprod;AccountKey={KEY};"
              "EndpointSuffix=core.windows.net")
CLIENT_ID = "0e7f0c2d-5b1a-4c3e-9f10-2a3b4c5d6e7f"
RESOURCE_ID = ("/subscriptions/6f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f/resourceGroups/rg-rotator/"
               "providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-rotator")
URI = "AzureWebJobsStorage__tableServiceUri"
ACCOUNT = "AzureWebJobsStorage__accountName"
CREDENTIAL = "AzureWebJobsStorage__credential"
CLIENT = "AzureWebJobsStorage__clientId"
RESOURCE = "AzureWebJobsStorage__managedIdentityResourceId"


def journal_spec(**env: str) -> str:
    return Settings.from_env({**BASE, **env}).protocol.journal


def refusal(**env: str) -> ConfigurationError:
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env({**BASE, **env})
    return caught.value


def identity(spec: str) -> TableIdentity:
    journal = open_journal(spec)
    assert isinstance(journal, TableJournal) and journal.identity is not None
    return journal.identity


# ---- the forms and their precedence ---------------------------------------------------------

def test_the_connection_string_form_is_unchanged_and_never_shown() -> None:
    settings = Settings.from_env({**BASE, "AzureWebJobsStorage": CONNECTION})
    assert settings.protocol.journal == f"table:rotations:{CONNECTION}"
    assert KEY not in repr(settings)
    journal = open_journal(settings.protocol.journal)
    assert isinstance(journal, TableJournal) and journal.identity is None
    assert KEY not in repr(journal)


def test_a_connection_string_wins_over_the_identity_settings_as_in_functions() -> None:
    # Microsoft: "If the configured value is both an exact match for a single setting and a
    # prefix match for other settings, the exact match is used."
    assert journal_spec(AzureWebJobsStorage="UseDevelopmentStorage=true",
                        **{ACCOUNT: "stprod", URI: "https://x.example"}) \
        == "table:rotations:UseDevelopmentStorage=true"
    # An empty AzureWebJobsStorage (Terraform's azurerm sets one) is no connection string.
    assert journal_spec(AzureWebJobsStorage=" ", **{ACCOUNT: "stprod"}) \
        == "table:rotations:uri=https://stprod.table.core.windows.net"


def test_the_account_name_means_the_global_azure_table_endpoint() -> None:
    spec = journal_spec(ROTATOR_JOURNAL_TABLE="journal", **{ACCOUNT: "stprod01"})
    assert spec == "table:journal:uri=https://stprod01.table.core.windows.net"
    assert identity(spec) == TableIdentity("https://stprod01.table.core.windows.net")


def test_the_table_service_uri_wins_over_the_account_name() -> None:
    spec = journal_spec(**{ACCOUNT: "stprod01",
                           URI: "https://stprod01.table.core.chinacloudapi.cn/"})
    assert spec == "table:rotations:uri=https://stprod01.table.core.chinacloudapi.cn"
    loopback = journal_spec(**{URI: "https://127.0.0.1:10002/devstoreaccount1"})
    assert identity(loopback).endpoint == "https://127.0.0.1:10002/devstoreaccount1"


def test_setting_names_are_case_insensitive_as_in_functions() -> None:
    assert journal_spec(AzureWebJobsStorage__accountname="stprod") \
        == "table:rotations:uri=https://stprod.table.core.windows.net"
    assert journal_spec(azurewebjobsstorage=CONNECTION) == f"table:rotations:{CONNECTION}"
    error = refusal(AzureWebJobsStorage__accountName="stprod", AZUREWEBJOBSSTORAGE__ACCOUNTNAME="other")
    assert "case-insensitive" in str(error)


def test_a_user_assigned_identity_by_client_id_needs_credential_managedidentity() -> None:
    spec = journal_spec(**{ACCOUNT: "stprod", CREDENTIAL: "managedIdentity", CLIENT: CLIENT_ID})
    assert spec == f"table:rotations:uri=https://stprod.table.core.windows.net;" \
                   f"managedIdentityClientId={CLIENT_ID}"
    assert identity(spec) == TableIdentity("https://stprod.table.core.windows.net",
                                           client_id=CLIENT_ID)
    # System-assigned: managedidentity alone.
    assert identity(journal_spec(**{ACCOUNT: "stprod", CREDENTIAL: "managedidentity"})).client_id \
        is None
    # Without it Functions would not read the client ID as a managed identity either.
    error = refusal(**{ACCOUNT: "stprod", CLIENT: CLIENT_ID})
    assert f"{CLIENT} names a user-assigned identity only with {CREDENTIAL}=managedidentity" \
        in str(error)


def test_a_user_assigned_identity_by_resource_id() -> None:
    spec = journal_spec(**{URI: "https://stprod.table.core.windows.net", CREDENTIAL: "managedidentity",
                           RESOURCE: RESOURCE_ID})
    assert identity(spec).resource_id == RESOURCE_ID
    error = refusal(**{ACCOUNT: "stprod", CREDENTIAL: "managedidentity", CLIENT: CLIENT_ID,
                       RESOURCE: RESOURCE_ID})
    assert f"set {CLIENT} or {RESOURCE}, not both" in str(error)


# ---- refusals ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("env", "expected"), [
    ({}, "ROTATOR_JOURNAL=table needs AzureWebJobsStorage (the storage account's connection "
         f"string) or an identity-based connection to it: {ACCOUNT} or {URI}"),
    ({"AzureWebJobsStorage__blobServiceUri": "https://st.blob.core.windows.net",
      "AzureWebJobsStorage__queueServiceUri": "https://st.queue.core.windows.net"},
     "AzureWebJobsStorage__blobServiceUri, AzureWebJobsStorage__queueServiceUri alone is not "
     "enough: the journal is a table"),
    ({URI: "http://stprod.table.core.windows.net"}, f"{URI} must be an https:// URL"),
    ({URI: "http://127.0.0.1:10002/devstoreaccount1"}, "a bearer token is only sent over TLS"),
    ({URI: "https://stprod.table.core.windows.net/?sv=2024&sig=c2lnbmF0dXJl"},
     f"{URI} must not have a query or fragment"),
    ({URI: "https://user:pw@stprod.table.core.windows.net"}, f"{URI} must not contain '@'"),
    ({URI: "https://stprod.table.core.windows.net/a;b"}, f"{URI} must not contain ';'"),
    ({ACCOUNT: "StProd"}, f"{ACCOUNT} must be a storage account name (3-24 lower-case letters "
                          "and digits), got 'StProd'"),
    ({ACCOUNT: "st-prod"}, f"{ACCOUNT} must be a storage account name"),
    ({ACCOUNT: "st"}, f"{ACCOUNT} must be a storage account name"),
    ({ACCOUNT: "s" * 25}, f"{ACCOUNT} must be a storage account name"),
    ({ACCOUNT: "stprod.table.core.windows.net"}, f"{ACCOUNT} must be a storage account name"),
    ({ACCOUNT: "stprod", CREDENTIAL: "managedidentity", CLIENT: "id-rotator"},
     f"{CLIENT} must be the client ID (a GUID) of a user-assigned managed identity"),
    ({ACCOUNT: "stprod", CREDENTIAL: "managedidentity", RESOURCE: "id-rotator"},
     f"{RESOURCE} must be a user-assigned identity's resource ID"),
    ({ACCOUNT: "stprod", CREDENTIAL: "azurecli"},
     f"{CREDENTIAL} must be 'managedidentity' (in Azure) or unset"),
    ({ACCOUNT: "stprod", CREDENTIAL: "managedidentityasfederatedidentity", CLIENT: CLIENT_ID},
     "(a storage account in another tenant) is not supported by the journal"),
    ({ACCOUNT: "stprod", "AzureWebJobsStorage__tenantId": CLIENT_ID, CLIENT: CLIENT_ID,
      "AzureWebJobsStorage__clientSecret": "sp-secret-value"},
     "AzureWebJobsStorage__clientSecret (a service principal, which Functions takes only in "
     "local development) is not supported by the journal"),
    ({ACCOUNT: "stprod", RESOURCE: RESOURCE_ID},
     f"{RESOURCE} names a user-assigned identity only with {CREDENTIAL}=managedidentity"),
])
def test_storage_settings_that_cannot_work_are_refused_by_name(env: dict[str, str],
                                                                expected: str) -> None:
    error = refusal(**env)
    assert expected in str(error)
    for secret in ("c2lnbmF0dXJl", "pw@", "sp-secret-value"):
        assert secret not in str(error)


def test_every_journal_problem_is_reported_at_once() -> None:
    error = refusal(ROTATOR_JOURNAL_TABLE="a-b", **{URI: "http://x", CREDENTIAL: "managedidentity",
                                                      CLIENT: "nope", RESOURCE: RESOURCE_ID})
    assert len([p for p in error.problems if "ROTATOR_JOURNAL_TABLE" in p or "AzureWebJobs" in p]) == 4


# ---- the spec ---------------------------------------------------------------------------------

def test_the_spec_round_trips_and_is_also_written_by_hand() -> None:
    spec = table_identity_spec("journal", "https://stprod.table.core.windows.net/",
                               client_id=CLIENT_ID)
    assert spec == ("table:journal:uri=https://stprod.table.core.windows.net;"
                    f"managedIdentityClientId={CLIENT_ID}")
    journal = open_journal(spec)
    assert isinstance(journal, TableJournal) and journal.table_name == "journal"
    assert repr(journal) == ("TableJournal(table_name='journal', "
                             "endpoint='https://stprod.table.core.windows.net')")
    default_table = open_journal("table:URI=https://stprod.table.core.windows.net")
    assert isinstance(default_table, TableJournal) and default_table.table_name == "rotations"
    assert default_table.identity == TableIdentity("https://stprod.table.core.windows.net")


@pytest.mark.parametrize(("spec", "expected"), [
    ("table:journal:uri=https://st.table.core.windows.net;sas=abc", "'sas' is not an option"),
    (f"table:journal:uri=https://st.example;managedIdentityClientId={CLIENT_ID};"
     f"managedIdentityClientId={CLIENT_ID}", "or is repeated"),
    ("table:journal:uri=http://127.0.0.1:10002/devstoreaccount1", "must be an https:// URL"),
    ("table:journal:uri=https://st.example/?sig=abc", "must not have a query"),
    ("table:journal:uri=https://st.example;managedIdentityClientId=x", "a GUID"),
])
def test_open_journal_refuses_an_identity_spec_that_cannot_work(spec: str, expected: str) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(expected)):
        open_journal(spec)


def test_a_credential_goes_only_with_an_identity() -> None:
    with pytest.raises(ConfigurationError, match="not with a connection string"):
        TableJournal(CONNECTION, credential=object())  # type: ignore[arg-type]


# ---- the credential production builds ---------------------------------------------------------

def test_production_builds_default_azure_credential(monkeypatch: pytest.MonkeyPatch) -> None:
    from azure.identity import DefaultAzureCredential, ManagedIdentityCredential

    monkeypatch.delenv("AZURE_CLIENT_ID", raising=False)
    system = identity(journal_spec(**{ACCOUNT: "stprod"})).credential()
    user = identity(journal_spec(**{ACCOUNT: "stprod", CREDENTIAL: "managedidentity",
                                    CLIENT: CLIENT_ID})).credential()
    by_resource = identity(journal_spec(**{ACCOUNT: "stprod", CREDENTIAL: "managedidentity",
                                           RESOURCE: RESOURCE_ID})).credential()
    assert type(system) is DefaultAzureCredential and type(user) is DefaultAzureCredential
    # DefaultAzureCredential takes no resource ID; ManagedIdentityCredential does.
    assert type(by_resource) is ManagedIdentityCredential
    # Which identity each asks for is shown over HTTP, against App Service's identity endpoint
    # (tests/journal/test_identity.py::test_settings_reach_the_table_with_the_managed_identity).
    for credential in (system, user, by_resource):
        credential.close()


def test_azure_identity_loads_only_when_the_identity_form_is_first_used() -> None:
    script = (
        "import sys\n"
        "from rotation.journal import open_journal\n"
        "from rotation.settings import Settings\n"
        "open_journal('table:UseDevelopmentStorage=true')\n"
        "journal = open_journal('table:rotations:uri=https://stprod.table.core.windows.net')\n"
        "assert 'azure.identity' not in sys.modules, 'imported before first use'\n"
        "journal.identity.credential()\n"
        "assert 'azure.identity' in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr


def test_a_credential_without_a_token_is_access_denied_not_a_crash() -> None:
    translated = _translate(ClientAuthenticationError("DefaultAzureCredential failed to retrieve "
                                                      "a token from the included credentials"))
    assert isinstance(translated, AccessDenied)
    assert str(translated) == ("the journal could not get a token for its storage account: "
                               "ClientAuthenticationError")
