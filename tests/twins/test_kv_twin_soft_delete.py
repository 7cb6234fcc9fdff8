"""Soft delete, the name-reuse conflict, recover and purge, through the SDK's pollers."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.keyvault.secrets import SecretClient

from twins.keyvault import KeyVaultTwin

POLL = 0.05


def test_delete_then_reuse_is_409_deleted_but_recoverable(twin: KeyVaultTwin, client: SecretClient) -> None:
    client.set_secret("db-password", "v1", tags={"t": "1"})
    poller = client.begin_delete_secret("db-password", _polling_interval=POLL)
    deleted = poller.result()
    poller.wait()

    assert deleted.recovery_id == f"{twin.url}/deletedsecrets/db-password"
    assert deleted.deleted_date is not None
    assert deleted.scheduled_purge_date is not None
    assert (deleted.scheduled_purge_date - deleted.deleted_date).days == 90
    assert deleted.properties.tags == {"t": "1"}
    with pytest.raises(ResourceExistsError) as raised:
        client.set_secret("db-password", "v2")
    assert raised.value.status_code == 409
    assert raised.value.error is not None
    assert raised.value.error.code == "Conflict"
    assert raised.value.error.innererror == {"code": "ObjectIsDeletedButRecoverable"}
    assert raised.value.error.message == (
        "Secret db-password is currently in a deleted but recoverable state, and its name cannot "
        "be reused; in this state, the secret can only be recovered or purged."
    )
    with pytest.raises(ResourceNotFoundError):
        client.get_secret("db-password")


def test_get_and_list_deleted_secrets(twin: KeyVaultTwin, client: SecretClient) -> None:
    for name in ("a-secret", "b-secret", "c-secret"):
        client.set_secret(name, "v")
        client.begin_delete_secret(name, _polling_interval=POLL).wait()

    fetched = client.get_deleted_secret("b-secret")
    listed = list(client.list_deleted_secrets(max_page_size=2))

    assert fetched.name == "b-secret"
    assert fetched.properties.version is not None
    assert [d.name for d in listed] == ["a-secret", "b-secret", "c-secret"]
    assert all(d.recovery_id == f"{twin.url}/deletedsecrets/{d.name}" for d in listed)
    assert list(client.list_properties_of_secrets()) == []


def test_recover_brings_back_every_version(client: SecretClient) -> None:
    first = client.set_secret("svc", "v1")
    client.set_secret("svc", "v2")
    client.begin_delete_secret("svc", _polling_interval=POLL).wait()

    recovered = client.begin_recover_deleted_secret("svc", _polling_interval=POLL)
    recovered.wait()

    assert recovered.result().name == "svc"
    assert client.get_secret("svc").value == "v2"
    assert client.get_secret("svc", first.properties.version).value == "v1"
    assert len(list(client.list_properties_of_secret_versions("svc"))) == 2
    with pytest.raises(ResourceNotFoundError):
        client.get_deleted_secret("svc")


def test_purge_frees_the_name(twin: KeyVaultTwin, client: SecretClient) -> None:
    client.set_secret("temp", "v1")
    client.set_secret("temp", "v2")
    client.begin_delete_secret("temp", _polling_interval=POLL).wait()

    client.purge_deleted_secret("temp")
    reborn = client.set_secret("temp", "fresh")

    assert reborn.value == "fresh"
    assert len(list(client.list_properties_of_secret_versions("temp"))) == 1
    purge = [r for r in twin.requests if r.method == "DELETE" and r.path == "/deletedsecrets/temp"]
    assert [r.status for r in purge] == [204]


def test_deleting_or_recovering_unknown_names_is_404(client: SecretClient) -> None:
    with pytest.raises(ResourceNotFoundError):
        client.begin_delete_secret("nope", _polling_interval=POLL)
    with pytest.raises(ResourceNotFoundError):
        client.begin_recover_deleted_secret("nope", _polling_interval=POLL)
    with pytest.raises(ResourceNotFoundError) as raised:
        client.get_deleted_secret("nope")
    assert raised.value.error is not None
    assert raised.value.error.message == "Deleted Secret not found: nope"


@pytest.fixture
def slow_twin() -> Iterator[KeyVaultTwin]:
    with KeyVaultTwin(vault_name="kv-slow", delete_delay=0.4) as running:
        yield running


def test_delete_in_progress_is_404_then_visible(slow_twin: KeyVaultTwin) -> None:
    client = slow_twin.secret_client()
    client.set_secret("slow", "v")
    poller = client.begin_delete_secret("slow", _polling_interval=POLL)

    with pytest.raises(ResourceExistsError) as recreate:
        client.set_secret("slow", "again")
    assert recreate.value.error is not None
    assert recreate.value.error.innererror == {"code": "ObjectIsBeingDeleted"}
    with pytest.raises(ResourceExistsError) as purge:
        client.purge_deleted_secret("slow")
    assert purge.value.error is not None
    assert purge.value.error.message == "Secret is currently being deleted."

    started = time.monotonic()
    poller.wait()
    assert time.monotonic() - started >= 0.2
    polls = [r.status for r in slow_twin.requests if r.path == "/deletedsecrets/slow" and r.method == "GET"]
    assert polls[0] == 404
    assert polls[-1] == 200
    assert client.get_deleted_secret("slow").name == "slow"


def test_deleted_secret_whose_latest_version_is_disabled_reads_as_403(client: SecretClient) -> None:
    client.set_secret("dark", "v", enabled=False)
    client.begin_delete_secret("dark", _polling_interval=POLL).wait()  # 403 ends the poll

    with pytest.raises(HttpResponseError) as raised:
        client.get_deleted_secret("dark")
    assert raised.value.status_code == 403
    assert raised.value.error is not None
    assert raised.value.error.innererror == {"code": "SecretDisabled"}


def test_deleted_secrets_are_purged_at_their_scheduled_date() -> None:
    now = [1_700_000_000.0]
    clock: Callable[[], float] = lambda: now[0]  # noqa: E731
    with KeyVaultTwin(clock=clock) as clocked:
        client = clocked.secret_client()
        client.set_secret("old", "v")
        client.begin_delete_secret("old", _polling_interval=POLL).wait()
        now[0] += 90 * 24 * 3600
        assert client.set_secret("old", "new").value == "new"
