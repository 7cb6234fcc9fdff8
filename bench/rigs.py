"""What the rotation benchmarks share: a real PostgreSQL, a Key Vault twin seeded in bulk, the
app's settings pointing at both, and the checks run after the clock stops.

- :func:`postgres`: Debian's PostgreSQL, started as the test suite starts it
  (:func:`tests.support.postgres.running_postgres`: TLS from a throwaway CA, SCRAM over TCP).
- :func:`seed`: N logins (``CREATE ROLE ... LOGIN PASSWORD``, one transaction) and, for each, an
  opted-in secret written straight into the twin's store (no HTTP, no events, outside the
  service limits), bound to the operator target the tests declare
  (:func:`tests.support.targets.targets_setting`).
- :func:`app_environment`: the app settings a deployment would have, with the product's defaults
  for everything the benchmarks do not need to change (retries, back-off, lease, timeouts).
- :func:`logins_failing`: every login's current password from the vault, tried in a fresh TCP
  connection of its own.
- :class:`CpuMeter`: CPU seconds of the whole machine, of this process and of the PostgreSQL
  server (its postmaster and the backends it has reaped), from ``/proc`` (Linux).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from tests.support.postgres import PostgresServer, find_pg_bin, running_postgres
from tests.support.targets import DEFAULT_TARGET, targets_setting
from twins.keyvault import KeyVaultTwin

DAY = 24 * 60 * 60
STATIC_TOKEN = "bench-token"  # noqa: S105 - the twin accepts any non-empty token
ENV_KEYS_OWNED = ("ROTATOR_", "AzureWebJobsStorage", "APPLICATIONINSIGHTS_CONNECTION_STRING")


@dataclass(frozen=True)
class Login:
    """One PostgreSQL login and the secret that holds it."""

    secret: str
    role: str
    password: str


@contextmanager
def postgres() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL server from Debian's packages, for the block."""
    pg_bin = find_pg_bin()
    if pg_bin is None:
        raise SystemExit("PostgreSQL server binaries not found: run scripts/install-system-deps.sh "
                         "(Debian package 'postgresql') or set ROTATOR_TEST_PG_BIN")
    with running_postgres(pg_bin) as server:
        yield server


def logins(count: int, prefix: str = "app") -> list[Login]:
    """``count`` logins named ``{prefix}_00000``... and secrets ``db-{prefix}-00000``..."""
    return [Login(f"db-{prefix}-{index:05d}", f"{prefix}_{index:05d}",
                  f"First-Passw0rd-{prefix}-{index:05d}-{os.urandom(6).hex()}")
            for index in range(count)]


def create_roles(server: PostgresServer, wanted: Iterable[Login]) -> None:
    """Create every login in one transaction (the server computes each SCRAM verifier)."""
    with psycopg.connect(server.admin_conninfo) as conn:
        for login in wanted:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(login.role), sql.Literal(login.password)))


def store_secret(twin: KeyVaultTwin, login: Login, *, expires_in_days: float) -> str:
    """Write the login's secret straight into the twin's store; returns its version."""
    version = twin.store.set_secret(
        login.secret, json.dumps({"username": login.role, "password": login.password}),
        content_type="application/json",
        tags={"rotator-target": DEFAULT_TARGET, "owner": "bench"},
        exp=int(time.time() + expires_in_days * DAY))
    return version.version


def seed(server: PostgresServer, twin: KeyVaultTwin, wanted: list[Login], *,
         expires_in_days: float = 20) -> None:
    """Roles in PostgreSQL and their opted-in secrets in the twin, outside any timing."""
    create_roles(server, wanted)
    for login in wanted:
        store_secret(twin, login, expires_in_days=expires_in_days)


def app_environment(twin: KeyVaultTwin, server: PostgresServer, journal: Path,
                    **overrides: str) -> dict[str, str]:
    """The app settings of a deployment on this twin, PostgreSQL and SQLite journal.

    Everything else keeps the product's defaults (README "Configuration"): 4 attempts per call
    starting at 1 s, at most 30 s, a 60 s attempt back-off, 5 attempts, a 300 s lease.
    """
    settings = {
        "ROTATOR_VAULTS": f"{twin.vault_name}={twin.url}",
        "ROTATOR_KEYVAULT_AUTH": "static-token",
        "ROTATOR_KEYVAULT_STATIC_TOKEN": STATIC_TOKEN,
        "ROTATOR_KEYVAULT_CA_BUNDLE": str(twin.ca_path),
        "ROTATOR_TARGETS": targets_setting(server),
        "ROTATOR_JOURNAL": f"sqlite:{journal}",
        "ROTATOR_SWEEP_SCHEDULE": "0 */15 * * * *",
        "ROTATOR_HEALTH_SCHEDULE": "0 7 * * * *",
    }
    settings.update(overrides)
    return settings


@contextmanager
def environment(settings: dict[str, str]) -> Iterator[None]:
    """``os.environ`` holds exactly these app settings (of the ones the app reads) for the block."""
    saved = {key: value for key, value in os.environ.items() if key.startswith(ENV_KEYS_OWNED)}
    for key in saved:
        del os.environ[key]
    os.environ.update(settings)
    try:
        yield
    finally:
        for key in [k for k in os.environ if k.startswith(ENV_KEYS_OWNED)]:
            del os.environ[key]
        os.environ.update(saved)


def current_credential(twin: KeyVaultTwin, secret: str) -> tuple[str, str]:
    """(username, password) of the secret's current version, read from the twin's store."""
    value = json.loads(twin.store.get_secret(secret).value)
    return str(value["username"]), str(value["password"])


def logins_failing(twin: KeyVaultTwin, server: PostgresServer, secrets: Iterable[str],
                   threads: int = 4) -> list[str]:
    """The secrets whose current credential does not log in (a fresh TCP connection each)."""

    def fails(secret: str) -> str | None:
        user, password = current_credential(twin, secret)
        return None if server.can_login(user, password) else secret

    with ThreadPoolExecutor(threads) as pool:
        return [secret for secret in pool.map(fails, secrets) if secret is not None]


# -- CPU accounting (Linux /proc) -------------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK")


def _machine_busy() -> tuple[float, float, float]:
    """(busy, stolen, total) CPU seconds of the whole machine since boot: busy is user, nice,
    system, irq and softirq; stolen is what the hypervisor gave to others (a VM's steal)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return ((user + nice + system + irq + softirq) / _TICK, steal / _TICK, sum(fields) / _TICK)


def process_cpu(pid: int, *, children: bool = False) -> float:
    """CPU seconds of ``pid`` (with ``children``: plus those of the children it has reaped)."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    fields = raw[raw.rindex(")") + 2:].split()
    used = int(fields[11]) + int(fields[12])  # utime, stime
    if children:
        used += int(fields[13]) + int(fields[14])  # cutime, cstime
    return used / _TICK


def postmaster_pid(server: PostgresServer) -> int:
    return int((server.socket_dir / "data" / "postmaster.pid").read_text().split()[0])


class CpuMeter:
    """CPU seconds spent between :meth:`start` and :meth:`stop`: the machine's, this process's
    (the twin and the benchmark's driver), and PostgreSQL's."""

    def __init__(self, server: PostgresServer | None = None) -> None:
        self._pg = postmaster_pid(server) if server is not None else None
        self._start: tuple[float, ...] | None = None
        self.machine = self.stolen = self.machine_capacity = self.driver = self.postgres = 0.0
        self.wall = 0.0

    def _sample(self) -> tuple[float, ...]:
        busy, stolen, total = _machine_busy()
        pg = process_cpu(self._pg, children=True) if self._pg else 0.0
        return busy, stolen, total, process_cpu(os.getpid()), pg, time.perf_counter()

    def start(self) -> None:
        self._start = self._sample()

    def stop(self) -> None:
        assert self._start is not None
        end = self._sample()
        (self.machine, self.stolen, self.machine_capacity, self.driver, self.postgres,
         self.wall) = (b - a for a, b in zip(self._start, end, strict=True))

    @property
    def utilisation(self) -> float:
        """Busy share of every core over the interval (1.0: all cores busy all the time)."""
        return self.machine / self.machine_capacity if self.machine_capacity else 0.0

    @property
    def steal(self) -> float:
        """Share of the interval the hypervisor ran someone else on our cores."""
        return self.stolen / self.machine_capacity if self.machine_capacity else 0.0


def log_connections(server: PostgresServer) -> None:
    """Have the server log every connection it receives (for :func:`tcp_connections`)."""
    with psycopg.connect(server.admin_conninfo, autocommit=True) as conn:
        conn.execute("ALTER SYSTEM SET log_connections = on")
        conn.execute("SELECT pg_reload_conf()")
    time.sleep(0.2)  # the postmaster rereads its configuration on SIGHUP, asynchronously


def tcp_connections(server: PostgresServer) -> int:
    """TCP connections the server has received so far, refused logins included (its log)."""
    log = server.socket_dir / "log"
    text = log.read_text(errors="replace") if log.exists() else ""
    return text.count("connection received: host=127.0.0.1")


@contextmanager
def app_log(path: Path) -> Iterator[None]:
    """The app's log lines go to ``path`` for the block, through a root handler as the Functions
    worker installs its own (the app formats them as JSON, as deployed; nothing on stdout)."""
    import logging

    from handlers.observability import reset_for_tests

    handler = logging.FileHandler(path)
    root = logging.getLogger()
    root.addHandler(handler)
    reset_for_tests()  # the app sets its formatter on the root's handlers on first use
    try:
        yield
    finally:
        root.removeHandler(handler)
        handler.close()
        reset_for_tests()


def background_load(seconds: float = 1.0) -> float:
    """The machine's busy share over ``seconds`` of waiting: what else is running. Figures taken
    on a machine that is already busy are noisy; the benchmarks print this next to them."""
    before = _machine_busy()
    time.sleep(seconds)
    after = _machine_busy()
    total = after[2] - before[2]
    return (after[0] - before[0]) / total if total else 0.0
