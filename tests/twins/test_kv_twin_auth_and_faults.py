"""The 401 challenge flow, token checks, and injected throttling, 5xx and dropped connections."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any, cast

import pytest
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.core.rest import HttpResponse
from azure.keyvault.secrets import SecretClient

from twins.keyvault import KeyVaultTwin, RecordedRequest, TwinCredential

API_VERSION = "2026-04-01"
TENANT = "12345678-1234-1234-1234-123456789012"
CHALLENGE = (
    f'Bearer authorization="https://login.microsoftonline.com/{TENANT}", resource="https://vault.azure.net"'
)


def test_first_request_is_an_unauthenticated_probe_answered_401(twin: KeyVaultTwin) -> None:
    credential = TwinCredential("probe-token")
    client = twin.secret_client(credential=credential)

    client.set_secret("first", "value")
    client.get_secret("first")

    assert twin.requests == [
        RecordedRequest("PUT", "/secrets/first", {"api-version": API_VERSION}, False, 401),
        RecordedRequest("PUT", "/secrets/first", {"api-version": API_VERSION}, True, 200),
        RecordedRequest("GET", "/secrets/first/", {"api-version": API_VERSION}, True, 200),
    ]
    assert [(r.scopes, r.tenant_id) for r in credential.requests] == [
        (("https://vault.azure.net/.default",), TENANT)
    ]


def test_challenge_wire_format(raw: Callable[..., Any]) -> None:
    response = raw("GET", f"/secrets/x/?api-version={API_VERSION}", token=None)

    assert response.status == 401
    assert response.headers["WWW-Authenticate"] == CHALLENGE
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    assert response.body == {
        "error": {"code": "Unauthorized", "message": "AKV10000: Request is missing a Bearer or PoP token."}
    }


def test_rejected_token_is_401_for_the_sdk() -> None:
    with KeyVaultTwin(accepted_tokens={"good-token"}) as twin:
        good = twin.secret_client()
        good.set_secret("guarded", "v")
        bad = twin.secret_client(credential=TwinCredential("stolen-token"))
        with pytest.raises(ClientAuthenticationError) as raised:
            bad.get_secret("guarded")
    assert raised.value.status_code == 401
    assert [(r.authenticated, r.status) for r in twin.requests][-1] == (False, 401)


def test_missing_api_version_is_400(raw: Callable[..., Any]) -> None:
    response = raw("GET", "/secrets")

    assert response.status == 400
    assert response.body["error"]["code"] == "BadParameter"


def test_injected_429_without_retry_after_as_the_sdk_sees_it(twin: KeyVaultTwin) -> None:
    client = twin.secret_client(retry_total=0)
    client.set_secret("hot", "v")
    twin.inject_fault(status=429)

    with pytest.raises(HttpResponseError) as raised:
        client.get_secret("hot")

    assert raised.value.status_code == 429
    assert raised.value.error is not None
    assert raised.value.error.code == "Throttled"
    assert raised.value.error.message is not None
    assert raised.value.error.message.endswith("Reason: VaultRequestTypeLimitReached")
    assert "Retry-After" not in _headers(raised.value)
    assert client.get_secret("hot").value == "v"  # the fault was used up


def test_injected_429_with_retry_after(twin: KeyVaultTwin) -> None:
    client = twin.secret_client(retry_total=0)
    client.set_secret("hot", "v")
    twin.inject_fault(status=429, retry_after=7, method="GET", path_contains="/secrets/hot")

    with pytest.raises(HttpResponseError) as raised:
        client.get_secret("hot")

    assert _headers(raised.value)["Retry-After"] == "7"


def test_default_client_retries_through_429_and_503(twin: KeyVaultTwin, client: SecretClient) -> None:
    client.set_secret("busy", "v")
    twin.inject_fault(status=429)
    assert client.get_secret("busy").value == "v"
    twin.inject_fault(status=503)
    assert client.get_secret("busy").value == "v"

    statuses = [r.status for r in twin.requests if r.method == "GET"]
    assert statuses == [429, 200, 503, 200]


def test_injected_503_with_retries_disabled(twin: KeyVaultTwin) -> None:
    client = twin.secret_client(retry_total=0)
    twin.inject_fault(status=503, method="PUT")

    with pytest.raises(HttpResponseError) as raised:
        client.set_secret("x", "v")

    assert raised.value.status_code == 503
    assert raised.value.error is not None
    assert raised.value.error.code == "ServiceUnavailable"
    assert list(twin.store.list_secrets(None, 25).items) == []


def test_faults_only_hit_matching_authenticated_requests(twin: KeyVaultTwin, client: SecretClient) -> None:
    twin.inject_fault(status=500, method="DELETE")

    client.set_secret("kept", "v")  # probe + PUT: neither matches

    assert [r.status for r in twin.requests] == [401, 200]
    twin.clear_faults()
    client.begin_delete_secret("kept", _polling_interval=0.05).wait()


def test_dropped_connection(twin: KeyVaultTwin) -> None:
    strict = twin.secret_client(retry_total=0)
    strict.set_secret("flaky", "v")
    twin.inject_fault(status=0)

    with pytest.raises(ServiceResponseError):
        strict.get_secret("flaky")

    twin.inject_fault(status=0)
    assert twin.secret_client().get_secret("flaky").value == "v"  # the default client retries
    assert [r.status for r in twin.requests][-3:] == [0, 0, 200]


def test_lost_response_after_processing_makes_a_retried_set_create_two_versions(
    twin: KeyVaultTwin, client: SecretClient
) -> None:
    twin.inject_fault(status=0, method="PUT", after_processing=True)

    client.set_secret("rotated", "new-password")

    assert len(list(client.list_properties_of_secret_versions("rotated"))) == 2


def test_stop_cuts_pooled_connections_and_url_needs_a_running_twin() -> None:
    twin = KeyVaultTwin()
    with pytest.raises(RuntimeError):
        _ = twin.url
    with twin:
        client = twin.secret_client(retry_total=0)
        client.set_secret("pooled", "v")  # leaves a keep-alive connection in the pool
    with pytest.raises((ServiceRequestError, ServiceResponseError)):
        client.get_secret("pooled")


def test_concurrent_sets_are_all_kept(twin: KeyVaultTwin, client: SecretClient) -> None:
    client.set_secret("busy", "seed")

    def writer(index: int) -> None:
        twin.secret_client().set_secret("busy", f"v{index}")

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(list(client.list_properties_of_secret_versions("busy"))) == 9
    assert len(twin.events) == 9


def _headers(error: HttpResponseError) -> Mapping[str, str]:
    """Response headers of an SDK error (typed loosely by azure-core)."""
    response = cast(HttpResponse, error.response)
    return response.headers
