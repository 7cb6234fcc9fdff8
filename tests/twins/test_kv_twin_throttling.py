"""Service limits: per-vault quotas per window, 429 ``Throttled`` beyond them, switchable.

Through the real ``SecretClient`` with its retries off (``retry_total=0``) so every 429 is
seen raw; raw HTTPS on a keep-alive connection where a test needs thousands of requests or
the exact wire. Time is a stepped clock, never a sleep.
"""

from __future__ import annotations

import http.client
import json
import random
import signal
import ssl
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import pytest
from azure.core.exceptions import HttpResponseError
from azure.core.rest import HttpResponse
from azure.keyvault.secrets import SecretClient

from tests.twins.conftest import RAW_TOKEN, raw_request
from tests.twins.standalone import running_cli
from twins.keyvault import KeyVaultTwin, ServiceLimits, ThrottleCounts, TwinCredential
from twins.keyvault.errors import THROTTLED_MESSAGE
from twins.keyvault.limits import Limiter

API_VERSION = "2026-04-01"
START = 1_700_000_000.0  # a multiple of 10: fixed windows start here
THROTTLED_BODY = {"error": {"code": "Throttled", "message": THROTTLED_MESSAGE}}


@dataclass
class SteppedClock:
    """A clock that moves only when told to."""

    now: float = START

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> SteppedClock:
    return SteppedClock()


def limited_twin(clock: SteppedClock, **limits: Any) -> KeyVaultTwin:
    return KeyVaultTwin(vault_name="kv-limits", clock=clock, limits=ServiceLimits(**limits))


def strict_client(twin: KeyVaultTwin) -> SecretClient:
    """A client that reports a 429 at once instead of backing off and retrying."""
    return twin.secret_client(retry_total=0)


def throttled(call: Any, *args: Any, **kwargs: Any) -> HttpResponseError:
    """Run an SDK call that must be refused with 429 ``Throttled``; return the error."""
    with pytest.raises(HttpResponseError) as raised:
        call(*args, **kwargs)
    error = raised.value
    assert error.status_code == 429
    assert error.error is not None
    assert error.error.code == "Throttled"
    assert error.error.message == THROTTLED_MESSAGE
    return error


def retry_after(error: HttpResponseError) -> str | None:
    headers: Mapping[str, str] = cast(HttpResponse, error.response).headers
    return headers.get("Retry-After")


class KeepAlive:
    """Raw requests over one pooled HTTPS connection (thousands of requests stay fast)."""

    def __init__(self, twin: KeyVaultTwin) -> None:
        address = urlsplit(twin.url)
        context = ssl.create_default_context(cafile=str(twin.ca_path))
        self._connection = http.client.HTTPSConnection(
            address.hostname or "127.0.0.1", address.port, context=context, timeout=10
        )
        self._headers = {"Authorization": f"Bearer {RAW_TOKEN}", "Content-Type": "application/json"}

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, dict[str, str], Any]:
        data = None if body is None else json.dumps(body).encode("utf-8")
        separator = "&" if "?" in path else "?"
        self._connection.request(
            method, f"{path}{separator}api-version={API_VERSION}", body=data, headers=self._headers
        )
        response = self._connection.getresponse()
        payload = response.read()
        return response.status, dict(response.headers), json.loads(payload) if payload else None

    def close(self) -> None:
        self._connection.close()


@pytest.fixture
def keep_alive() -> Iterator[list[KeepAlive]]:
    opened: list[KeepAlive] = []
    yield opened
    for connection in opened:
        connection.close()


# -- the documented numbers -----------------------------------------------------------


def test_defaults_are_the_documented_limits() -> None:
    limits = ServiceLimits()

    assert (limits.creates, limits.others, limits.window) == (300, 4000, 10.0)
    assert (limits.mode, limits.retry_after) == ("sliding", "never")
    assert KeyVaultTwin().limits is None  # and they are off unless asked for


def test_documented_quotas_301st_create_and_4001st_other_are_refused(
    clock: SteppedClock, keep_alive: list[KeepAlive]
) -> None:
    with KeyVaultTwin(clock=clock, limits=ServiceLimits()) as twin:
        client = strict_client(twin)
        for index in range(300):
            client.set_secret("hot", f"v{index}")

        throttled(client.set_secret, "hot", "v300")
        assert client.get_secret("hot").value == "v299"  # reads have their own quota

        raw = KeepAlive(twin)
        keep_alive.append(raw)
        statuses = [raw.call("GET", "/secrets/hot/")[0] for _ in range(3999)]  # + 1 read above
        status, _, body = raw.call("GET", "/secrets/hot/")

        assert set(statuses) == {200}
        assert (status, body) == (429, THROTTLED_BODY)
        assert twin.throttle_stats() == {
            "create": ThrottleCounts(served=300, refused=1),
            "other": ThrottleCounts(served=4000, refused=1),
        }


# -- classes, quotas and windows ------------------------------------------------------


def test_429_wire_body_and_headers(clock: SteppedClock) -> None:
    with limited_twin(clock, creates=1) as twin:
        first = raw_request(twin, "PUT", f"/secrets/wire?api-version={API_VERSION}", {"value": "v"})
        refused = raw_request(twin, "PUT", f"/secrets/wire?api-version={API_VERSION}", {"value": "w"})

    assert first.status == 200
    assert refused.status == 429
    assert refused.body == THROTTLED_BODY  # no innererror, as captured from the service
    assert refused.headers["Content-Type"] == "application/json; charset=utf-8"
    assert "Retry-After" not in refused.headers  # default: as observed, none
    assert refused.headers["x-ms-request-id"]


OPERATIONS = [
    ("PUT", "/secrets/name", {"value": "v"}),
    ("GET", "/secrets/name", None),
    ("GET", "/secrets/name/", None),
    ("GET", "/secrets/name/0123abcd", None),
    ("PATCH", "/secrets/name", {"tags": {}}),
    ("PATCH", "/secrets/name/0123abcd", {"tags": {}}),
    ("GET", "/secrets", None),
    ("GET", "/secrets/name/versions", None),
    ("DELETE", "/secrets/name", None),
    ("GET", "/deletedsecrets", None),
    ("GET", "/deletedsecrets/name", None),
    ("POST", "/deletedsecrets/name/recover", None),
    ("DELETE", "/deletedsecrets/name", None),
    ("POST", "/secrets/name/backup", None),  # not modelled (501), still a transaction
]


def test_only_set_secret_is_a_create(clock: SteppedClock, keep_alive: list[KeepAlive]) -> None:
    with limited_twin(clock, creates=0) as twin:
        raw = KeepAlive(twin)
        keep_alive.append(raw)
        refused = [(m, p) for m, p, body in OPERATIONS if raw.call(m, p, body)[0] == 429]

        assert refused == [("PUT", "/secrets/name")]
        assert twin.throttle_stats() == {
            "create": ThrottleCounts(served=0, refused=1),
            "other": ThrottleCounts(served=len(OPERATIONS) - 1, refused=0),  # 404s and 501 count
        }


def test_update_list_delete_and_recover_spend_the_other_quota(clock: SteppedClock) -> None:
    with limited_twin(clock, creates=1, others=100) as twin:
        client = strict_client(twin)
        created = client.set_secret("meta", "v")
        client.update_secret_properties("meta", created.properties.version, tags={"a": "b"})
        assert len(list(client.list_properties_of_secret_versions("meta"))) == 1
        assert [p.name for p in client.list_properties_of_secrets()] == ["meta"]
        client.begin_delete_secret("meta", _polling_interval=0.01).wait()
        client.begin_recover_deleted_secret("meta", _polling_interval=0.01).wait()

        stats = twin.throttle_stats()

    assert stats["create"] == ThrottleCounts(served=1, refused=0)
    assert stats["other"].served >= 6 and stats["other"].refused == 0


def test_creates_refused_while_reads_served_and_reads_limited_independently(clock: SteppedClock) -> None:
    with limited_twin(clock, creates=2, others=3) as twin:
        client = strict_client(twin)
        client.set_secret("pair", "v1")
        client.set_secret("pair", "v2")
        throttled(client.set_secret, "pair", "v3")

        assert client.get_secret("pair").value == "v2"
        assert client.get_secret("pair").value == "v2"
        assert client.update_secret_properties("pair", tags={"k": "v"}).tags == {"k": "v"}
        throttled(client.get_secret, "pair")
        throttled(client.update_secret_properties, "pair", tags={"k": "w"})

        assert twin.throttle_stats() == {
            "create": ThrottleCounts(served=2, refused=1),
            "other": ThrottleCounts(served=3, refused=2),
        }


def test_refused_writes_change_nothing(clock: SteppedClock) -> None:
    with limited_twin(clock, creates=1, others=10) as twin:
        client = strict_client(twin)
        kept = client.set_secret("only", "first")
        throttled(client.set_secret, "only", "second")
        throttled(client.set_secret, "never", "created")

        versions = [p.version for p in client.list_properties_of_secret_versions("only")]
        assert versions == [kept.properties.version]
        assert client.get_secret("only").value == "first"
        assert [p.name for p in client.list_properties_of_secrets()] == ["only"]
        assert len(twin.events) == 1  # no SecretNewVersionCreated for a refused set
        assert [r.status for r in twin.requests if r.method == "PUT" and r.authenticated] == [200, 429, 429]


def test_writes_served_again_once_the_window_passes(clock: SteppedClock) -> None:
    with limited_twin(clock, creates=2, window=10.0) as twin:
        client = strict_client(twin)
        client.set_secret("w", "a")
        clock.advance(4)
        client.set_secret("w", "b")
        throttled(client.set_secret, "w", "c")

        clock.advance(5.9)  # t=9.9: both still in the window
        throttled(client.set_secret, "w", "c")
        clock.advance(0.1)  # t=10: the first has left the sliding window, the second not
        client.set_secret("w", "c")
        throttled(client.set_secret, "w", "d")
        clock.advance(4)  # t=14: the second has left
        client.set_secret("w", "d")

        assert client.get_secret("w").value == "d"
        assert twin.throttle_stats()["create"] == ThrottleCounts(served=4, refused=3)


def test_fixed_windows_reset_at_the_boundary(clock: SteppedClock) -> None:
    with limited_twin(clock, creates=2, mode="fixed", retry_after="always") as twin:
        client = strict_client(twin)
        clock.advance(8)  # t=8 of the window [0, 10)
        client.set_secret("f", "a")
        client.set_secret("f", "b")
        error = throttled(client.set_secret, "f", "c")
        assert retry_after(error) == "2"

        clock.advance(2)  # t=10: a new window, the full quota again
        client.set_secret("f", "c")
        client.set_secret("f", "d")
        assert retry_after(throttled(client.set_secret, "f", "e")) == "10"


# -- Retry-After ----------------------------------------------------------------------


def test_retry_after_always_is_the_seconds_until_room_rounded_up() -> None:
    clock = SteppedClock(now=0.0)  # small times, where 0.3 + 10 - 5.3 is 5.000000000000001
    with limited_twin(clock, creates=1, retry_after="always") as twin:
        client = strict_client(twin)
        clock.advance(0.3)
        client.set_secret("r", "a")  # leaves the window at t=10.3
        clock.advance(5)  # t=5.3: 5 s to go, float noise not rounded up to 6
        assert retry_after(throttled(client.set_secret, "r", "b")) == "5"
        clock.advance(1.5)  # t=6.8: 3.5 s
        assert retry_after(throttled(client.set_secret, "r", "b")) == "4"
        clock.advance(3.45)  # t=10.25: 0.05 s
        assert retry_after(throttled(client.set_secret, "r", "b")) == "1"
        clock.advance(0.05)
        client.set_secret("r", "b")


def test_retry_after_never_and_alternate(clock: SteppedClock) -> None:
    with limited_twin(clock, creates=0, retry_after="never") as never:
        client = strict_client(never)
        assert [retry_after(throttled(client.set_secret, "n", "v")) for _ in range(3)] == [None] * 3

    with limited_twin(clock, others=0, retry_after="alternate") as alternate:
        client = strict_client(alternate)
        headers = [retry_after(throttled(client.get_secret, "n")) for _ in range(4)]
        assert headers == ["10", None, "10", None]


def test_retry_after_probability_is_seeded(clock: SteppedClock) -> None:
    draws = random.Random(7)
    expected = ["10" if draws.random() < 0.5 else None for _ in range(12)]
    assert None in expected and "10" in expected  # the seed shows both cases

    with limited_twin(clock, others=0, retry_after=0.5, seed=7) as twin:
        client = strict_client(twin)
        assert [retry_after(throttled(client.get_secret, "p")) for _ in range(12)] == expected


# -- switchable, concurrent, counted ----------------------------------------------------


def test_limits_off_by_default_never_throttle(clock: SteppedClock, keep_alive: list[KeepAlive]) -> None:
    with KeyVaultTwin(clock=clock) as twin:
        raw = KeepAlive(twin)
        keep_alive.append(raw)
        writes = [raw.call("PUT", "/secrets/free", {"value": f"v{i}"})[0] for i in range(400)]
        reads = [raw.call("GET", "/secrets/free/")[0] for _ in range(100)]

        assert set(writes) == set(reads) == {200}
        assert twin.limits is None
        assert twin.throttle_stats() == {  # counted all the same, for benchmarks
            "create": ThrottleCounts(served=400, refused=0),
            "other": ThrottleCounts(served=100, refused=0),
        }


def test_concurrent_writers_get_exactly_the_quota_per_window(
    clock: SteppedClock, keep_alive: list[KeepAlive]
) -> None:
    threads_count, per_thread, quota = 8, 40, 100
    with limited_twin(clock, creates=quota) as twin:
        connections = [KeepAlive(twin) for _ in range(threads_count)]
        keep_alive.extend(connections)
        statuses: list[int] = []
        lock = threading.Lock()
        barrier = threading.Barrier(threads_count)

        def hammer(connection: KeepAlive, index: int) -> None:
            barrier.wait()
            mine = [
                connection.call("PUT", "/secrets/burst", {"value": f"{index}-{n}"})[0]
                for n in range(per_thread)
            ]
            with lock:
                statuses.extend(mine)

        def burst() -> None:
            workers = [threading.Thread(target=hammer, args=(c, i)) for i, c in enumerate(connections)]
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join()

        burst()
        assert sorted(statuses) == [200] * quota + [429] * (threads_count * per_thread - quota)
        clock.advance(10)
        statuses.clear()
        burst()
        assert statuses.count(200) == quota

        refused = threads_count * per_thread - quota
        assert twin.throttle_stats()["create"] == ThrottleCounts(served=2 * quota, refused=2 * refused)
        versions = list(strict_client(twin).list_properties_of_secret_versions("burst"))
        assert len(versions) == len(twin.events) == 2 * quota  # only served writes left a trace


def test_concurrent_sdk_clients_share_one_vault_quota(clock: SteppedClock) -> None:
    with limited_twin(clock, creates=5) as twin:
        outcomes: list[int] = []
        lock = threading.Lock()
        barrier = threading.Barrier(12)

        def writer(index: int) -> None:
            client = strict_client(twin)
            barrier.wait()
            try:
                client.set_secret("shared", f"v{index}")
                status = 200
            except HttpResponseError as exc:
                status = exc.status_code or 0
            with lock:
                outcomes.append(status)

        workers = [threading.Thread(target=writer, args=(i,)) for i in range(12)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()

        assert sorted(outcomes) == [200] * 5 + [429] * 7
        assert len(list(strict_client(twin).list_properties_of_secret_versions("shared"))) == 5


def test_faults_before_processing_and_unauthenticated_probes_spend_no_quota(clock: SteppedClock) -> None:
    with limited_twin(clock, creates=1) as twin:
        twin.inject_fault(status=503, method="PUT")
        client = strict_client(twin)
        with pytest.raises(HttpResponseError) as failed:
            client.set_secret("f", "v")  # probe (401) + PUT answered by the fault
        assert failed.value.status_code == 503

        client.set_secret("f", "v")  # the quota is still whole
        throttled(client.set_secret, "f", "w")
        assert twin.throttle_stats()["create"] == ThrottleCounts(served=1, refused=1)


def test_admin_endpoint_reports_and_resets(clock: SteppedClock) -> None:
    with limited_twin(clock, creates=1, retry_after="always") as twin:
        client = strict_client(twin)
        client.set_secret("a", "v")
        throttled(client.set_secret, "a", "w")

        shown = raw_request(twin, "GET", "/_twin/limits", token=None)
        assert shown.status == 200
        assert shown.body == {
            "limits": {
                "creates": 1,
                "others": 4000,
                "window": 10.0,
                "mode": "sliding",
                "retry_after": "always",
                "seed": 0,
            },
            "stats": {"create": {"served": 1, "refused": 1}, "other": {"served": 0, "refused": 0}},
        }

        reset = raw_request(twin, "DELETE", "/_twin/limits", token=None)
        assert reset.body["stats"]["create"] == {"served": 0, "refused": 0}
        client.set_secret("a", "w")  # the window was emptied too
        assert [r.path for r in twin.requests if r.path.startswith("/_twin")] == []


@pytest.mark.parametrize(
    "bad",
    [
        {"creates": -1},
        {"others": -5},
        {"window": 0},
        {"mode": "leaky"},
        {"retry_after": "sometimes"},
        {"retry_after": 1.5},
        {"retry_after": True},
    ],
)
def test_invalid_limits_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        ServiceLimits(**bad)


def test_a_limiter_without_limits_only_counts() -> None:
    limiter = Limiter(None)
    assert all(limiter.admit("create") is None for _ in range(1000))
    assert limiter.stats()["create"] == ThrottleCounts(served=1000, refused=0)


# -- CLI ------------------------------------------------------------------------------


def _start(tmp_path: Path, *extra: str) -> Any:
    """``python -m twins.keyvault`` on a free port with ``extra`` options (a context manager)."""
    arguments = ["--port", "0", "--cert-dir", str(tmp_path / "certs"), "--token", "cli-token", *extra]
    return running_cli("twins.keyvault", *arguments)


def _announced(stdout: Any, lines: int) -> dict[str, str]:
    printed: dict[str, str] = {}
    for _ in range(lines):
        key, _, value = stdout.readline().strip().partition("=")
        printed[key] = value
    return printed


def test_cli_limits_flags_turn_throttling_on(tmp_path: Path) -> None:
    flags = ["--limits-writes", "2", "--limits-others", "50", "--limits-retry-after", "always"]
    with _start(tmp_path, *flags) as (process, stdout):
        printed = _announced(stdout, 5)
        assert json.loads(printed["limits"]) == {
            "creates": 2,
            "others": 50,
            "window": 10.0,
            "mode": "sliding",
            "retry_after": "always",
            "seed": 0,
        }
        client = SecretClient(
            printed["url"],
            TwinCredential("cli-token"),
            connection_verify=printed["ca"],
            verify_challenge_resource=False,
            retry_total=0,
        )
        client.set_secret("cli", "a")
        client.set_secret("cli", "b")
        error = throttled(client.set_secret, "cli", "c")
        assert retry_after(error) in {"9", "10"}  # real clock: 10 s less the time since the first set

        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0


def test_cli_limits_alone_enforces_the_documented_numbers(tmp_path: Path) -> None:
    with _start(tmp_path, "--limits") as (process, stdout):
        printed = _announced(stdout, 5)
        assert json.loads(printed["limits"])["creates"] == 300
        assert json.loads(printed["limits"])["others"] == 4000
        process.terminate()
        assert process.wait(timeout=10) == 0


def test_cli_without_limits_prints_no_limits_line_and_rejects_bad_values(tmp_path: Path) -> None:
    with _start(tmp_path) as (process, stdout):
        printed = _announced(stdout, 4)
        assert "limits" not in printed
        process.terminate()
        assert process.wait(timeout=10) == 0
        assert stdout.read() == ""  # nothing after the hint

    bad = ["--limits-retry-after", "sometimes"]
    with _start(tmp_path / "bad", *bad) as (process, _):
        assert process.wait(timeout=10) == 2
        assert process.stderr is not None
        assert "--limits-retry-after" in process.stderr.read()

    with _start(tmp_path / "bad2", "--limits-window", "0") as (process, _):
        assert process.wait(timeout=10) == 2
