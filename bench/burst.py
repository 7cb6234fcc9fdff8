"""A burst of near-expiry events against Key Vault's service limits:
``python -m bench.burst [--quick] [--events N] [--workers W] [--threads T] [--json PATH]``.

**The world.** One real PostgreSQL server (:func:`bench.rigs.postgres`) with ``events`` logins;
for each, an opted-in secret in the Key Vault twin bound to the operator target the tests declare
(:func:`tests.support.targets.pg_target`: TLS verify-full, channel binding, SCRAM, single-user).
The twin enforces Key Vault's documented limits (:class:`twins.keyvault.ServiceLimits`: 300 secret
creates and 4,000 other transactions per vault per 10 s, sliding window) and answers its 429s with
``Retry-After`` on every other refusal (``retry_after="alternate"``), so both kinds occur. The
journal is one SQLite file (WAL) shared by every worker process.

**The Functions host.** ``workers`` processes (default 4 on this 2-core machine: the host has
scaled out) each import ``function_app`` once, as the Python worker does, and run up to ``threads``
invocations at once (the per-instance concurrency, docs/adr/0007-per-instance-concurrency.md). Each
invocation is a real ``azure.functions.EventGridEvent`` decoded from the wire payload as the worker
decodes it (:func:`tests.support.payloads.decode_event`) and handed to
``function_app.keyvault_events``. The app runs with the product's default settings. Its logs go to
a file per worker through the root handler, as the Functions worker installs its own.

**Event Grid** (the driver, in this process) publishes one ``Microsoft.KeyVault.SecretNearExpiry``
event per secret (``twin.emit``) at once and keeps pushing: an invocation that raises, or has not
answered within 30 s, is redelivered on Event Grid's documented schedule (learn.microsoft.com,
"Event Grid message delivery and retry": 10 s, 30 s, 1 min, 5 min, 10 min, 30 min, 1 h, 3 h, 6 h,
then every 12 h, with "a small randomization", here +-10 %), at most 30 deliveries within 24 h
(the subscription's defaults), after which the event is dead-lettered. A late success within
3 minutes cancels a redelivery that has not gone out yet, as the page says Event Grid tries to.
``schedule_scale`` shrinks the schedule, the timeout and the time-to-live (``--quick`` uses 0.01;
the full run uses the real schedule, 1.0). Event Grid's "delayed delivery" to an endpoint that
keeps failing is not modelled: it could only slow the burst further.

**Figures and goals.**

- *Correctness*: 0 failed rotations (journal), 0 duplicated rotations (exactly one succeeded
  rotation per secret in the journal, exactly one new version per secret in Key Vault), no event
  dead-lettered, and every secret's current credential logs in to PostgreSQL (a fresh connection
  per login).
- *Throughput* against what the limits allow: creates per rotation = served creates (the twin's
  ``throttle_stats``) / rotations; ceiling = 300 creates per 10 s / creates per rotation, in
  rotations per second; fraction = rotations per second over the whole burst (first delivery to
  last acknowledgement) / ceiling. Goal: at least 0.8.
- *Memory*: the peak RSS of each worker process (``VmHWM`` in ``/proc/self/status``; not
  ``resource.getrusage``, whose ``ru_maxrss`` Linux carries over from the parent across
  fork + exec, see :func:`peak_rss_mb`). Goal: at most 300 MB.

And, to explain a miss: the machine's CPU use during the burst and who spent it (workers, the
driver with the twin, PostgreSQL), the 429s per class, deliveries per event, invocation times,
and from the workers' logs the time invocations slept in the per-call retries and how many
rotations were sent back by throttling.

**Reading it.** The time until 99 % of the events were acknowledged is printed next to the whole
burst's: when one call's per-call retries all meet a 429, its rotation is released (due again
after 2.5-7.5 s) and its event raised, and only Event Grid's next delivery (10 s, 30 s, 1 min,
5 min later) resumes it; the more rotations in flight beyond what the vault serves, the more
of those (``rotations sent back by throttling``), and the last of them decide the end of the
burst. ADR 0007 has a table of these figures against the rotations in flight.
``--creates`` (a smaller create quota, so that Key Vault and not this machine's two
cores is the bottleneck, as with instances of their own in Azure) and ``--set SETTING=VALUE``
explore what a product change would do; the goals are stated for the documented limits and the
product's defaults.
"""

from __future__ import annotations

import argparse
import heapq
import json
import logging
import math
import multiprocessing
import os
import random
import resource
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from queue import Empty
from typing import Any

from bench import rigs
from twins.keyvault import NEAR_EXPIRY, KeyVaultTwin, ServiceLimits

FULL = {"events": 1000, "workers": 4, "threads": 4, "schedule_scale": 1.0}
QUICK = {"events": 20, "workers": 2, "threads": 2, "schedule_scale": 0.01}
THROUGHPUT_GOAL = 0.8
RSS_GOAL_MB = 300.0
LIMITS = ServiceLimits(retry_after="alternate")  # the documented 300 / 4,000 per 10 s
#: Event Grid's retry schedule in seconds (delivery-and-retry.md), then every 12 h.
SCHEDULE = (10, 30, 60, 300, 600, 1800, 3600, 3 * 3600, 6 * 3600)
LATER = 12 * 3600
RESPONSE_TIMEOUT = 30.0  # Event Grid waits this long for an answer
LATE_ANSWER = 180.0  # an answer within this long still removes the event from the retry queue
MAX_DELIVERIES = 30  # the subscription's default maxDeliveryAttempts
TIME_TO_LIVE = 24 * 3600  # the subscription's default eventTimeToLive (1,440 minutes)


@dataclass
class Result:
    """What one burst did, and the checks after it."""

    events: int
    workers: int
    threads: int
    schedule_scale: float
    creates_quota: int  # the limits the twin enforced: creates per window
    window: float
    overrides: dict[str, str]  # app settings changed from the product's defaults (exploring)
    seconds: float  # first delivery to last acknowledgement
    seconds_to_99: float  # first delivery to the acknowledgement of 99 % of the events (the tail)
    rotations: dict[str, int]  # journal: status -> rotations
    duplicated: int  # secrets with more than one succeeded rotation or new version
    missing: int  # secrets with no succeeded rotation or no new version
    logins_failing: int
    dead_lettered: int
    creates_served: int
    creates_refused: int
    others_served: int
    others_refused: int
    deliveries: int
    deliveries_per_event: dict[int, int]  # deliveries -> events
    timed_out: int  # deliveries Event Grid gave up waiting for (30 s)
    invocation_seconds: dict[str, float]  # median, p95, max
    outcomes: dict[str, int]  # the handler's log: event handled (rotated...) / will be retried
    retry_sleeps: dict[str, float]  # per-call retries in the workers' logs: count, seconds slept
    throttled_releases: int  # "rotation throttled; it comes back later"
    rss_mb: list[float]  # each worker's peak RSS (VmHWM)
    ru_maxrss_mb: list[float]  # getrusage's figure, which includes the parent's RSS at spawn
    worker_cpu_seconds: list[float]  # during the burst (imports excluded)
    cpu: dict[str, float]  # machine utilisation, and CPU seconds of driver+twin and PostgreSQL
    acked_per_10s: list[int] = field(default_factory=list)

    @property
    def succeeded(self) -> int:
        return self.rotations.get("succeeded", 0)

    @property
    def creates_per_rotation(self) -> float:
        return self.creates_served / self.succeeded if self.succeeded else float("nan")

    @property
    def ceiling(self) -> float:
        """Rotations per second the create quota allows."""
        return self.creates_quota / self.window / self.creates_per_rotation

    @property
    def rate(self) -> float:
        return self.succeeded / self.seconds if self.seconds else 0.0

    @property
    def fraction(self) -> float:
        return self.rate / self.ceiling

    @property
    def peak_rss_mb(self) -> float:
        return max(self.rss_mb) if self.rss_mb else 0.0

    @property
    def correct(self) -> bool:
        return (self.rotations.get("failed", 0) == 0 and self.duplicated == 0 and self.missing == 0
                and self.logins_failing == 0 and self.dead_lettered == 0
                and self.succeeded == self.events)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(succeeded=self.succeeded, creates_per_rotation=round(self.creates_per_rotation, 3),
                   ceiling_per_second=round(self.ceiling, 3), rotations_per_second=round(self.rate, 3),
                   fraction_of_ceiling=round(self.fraction, 3), fraction_goal=THROUGHPUT_GOAL,
                   peak_rss_mb=round(self.peak_rss_mb, 1), rss_goal_mb=RSS_GOAL_MB,
                   correct=self.correct)
        return out


# -- the Functions host: worker processes ------------------------------------------------------


def _worker(index: int, settings: dict[str, str], *, work: Any, results: Any, threads: int,
            log_path: str) -> None:
    """One worker process: import the app once, run ``threads`` invocations at a time."""
    os.environ.update(settings)
    handler = logging.FileHandler(log_path)  # as the Functions worker installs its own handler
    logging.getLogger().addHandler(handler)
    import function_app
    from tests.support.payloads import decode_event

    usage = resource.getrusage(resource.RUSAGE_SELF)
    results.put(("ready", index, usage.ru_utime + usage.ru_stime))

    def serve() -> None:
        while True:
            item = work.get()
            if item is None:
                return
            key, payload = item
            started = time.monotonic()
            results.put(("start", key, started))
            error = None
            try:
                function_app.keyvault_events(decode_event(payload))
            except Exception as exc:  # the host answers 500: Event Grid retries
                error = type(exc).__name__
            results.put(("done", key, error, started, time.monotonic()))

    pool = [threading.Thread(target=serve, name=f"invocation-{n}") for n in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    results.put(("exit", index, peak_rss_mb(), usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024))


def peak_rss_mb() -> float:
    """This process's peak resident set since it started (``VmHWM``), in MB.

    Not ``getrusage().ru_maxrss``: Linux carries that across ``fork`` + ``exec``, so a spawned
    worker would report at least the RSS its parent had when it was started (here the driver,
    with the twin and 1,000 secrets in it)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# -- Event Grid: deliveries and redeliveries -----------------------------------------------------


class EventGrid:
    """Pushes every event to the host's work queue and redelivers on Event Grid's schedule."""

    def __init__(self, payloads: list[dict[str, Any]], work: Any, scale: float, seed: int = 14) -> None:
        self.payloads = payloads
        self.work = work
        self.scale = scale
        self.rng = random.Random(seed)  # noqa: S311 - the jitter of an emulated schedule
        self.due: list[tuple[float, int, int]] = []  # (when, event, delivery number)
        self.scheduled: dict[int, int] = {}  # event -> the delivery number waiting in self.due
        self.waiting: set[tuple[int, int]] = set()  # sent to the host, not started yet
        self.inflight: dict[tuple[int, int], float] = {}  # (event, delivery) -> started
        self.timed_out: set[tuple[int, int]] = set()
        self.acked: dict[int, float] = {}  # event -> when
        self.dead: set[int] = set()
        self.deliveries: Counter[int] = Counter()
        self.invocations: list[float] = []
        self.published = 0.0

    def publish(self) -> None:
        self.published = time.monotonic()
        for event in range(len(self.payloads)):
            self._schedule(event, 1, self.published)

    def _schedule(self, event: int, delivery: int, when: float) -> None:
        if event in self.acked or event in self.dead or event in self.scheduled:
            return
        if delivery > MAX_DELIVERIES or when - self.published > TIME_TO_LIVE * self.scale:
            self.dead.add(event)
            return
        self.scheduled[event] = delivery
        heapq.heappush(self.due, (when, event, delivery))

    def _retry(self, event: int, delivery: int, now: float) -> None:
        step = SCHEDULE[delivery - 1] if delivery <= len(SCHEDULE) else LATER
        self._schedule(event, delivery + 1, now + step * self.scale * self.rng.uniform(0.9, 1.1))

    @property
    def settled(self) -> bool:
        return len(self.acked) + len(self.dead) == len(self.payloads)

    def pump(self, now: float) -> float:
        """Send what is due, give up waiting on slow invocations; seconds until the next due."""
        while self.due and self.due[0][0] <= now:
            _, event, delivery = heapq.heappop(self.due)
            if self.scheduled.get(event) != delivery:
                continue  # cancelled by a late answer
            del self.scheduled[event]
            self.deliveries[event] += 1
            self.waiting.add((event, delivery))
            self.work.put(((event, delivery), self.payloads[event]))
        for key, started in list(self.inflight.items()):
            if key not in self.timed_out and now - started > RESPONSE_TIMEOUT * self.scale:
                self.timed_out.add(key)
                self._retry(*key, now)
        return (self.due[0][0] - now) if self.due else 1.0

    def started(self, key: tuple[int, int], when: float) -> None:
        self.waiting.discard(key)
        self.inflight[key] = when

    def done(self, key: tuple[int, int], error: str | None, started: float, ended: float) -> None:
        self.inflight.pop(key, None)
        self.invocations.append(ended - started)
        event, delivery = key
        if error is None:
            if event in self.acked or event in self.dead:
                return
            late = key in self.timed_out
            if late and ended - started > LATE_ANSWER * self.scale:
                return  # too late to take the event off the retry queue
            self.acked[event] = ended
            self.scheduled.pop(event, None)  # best effort: a redelivery not yet sent is dropped
        elif key not in self.timed_out:
            self._retry(event, delivery, ended)


# -- the run ----------------------------------------------------------------------------------


@dataclass
class Host:
    """The worker processes, their queues, and what they reported."""

    work: Any
    results: Any
    processes: list[Any]
    threads: int
    startup_cpu: dict[int, float] = field(default_factory=dict)  # CPU spent importing the app
    exits: list[tuple[int, float, float, float]] = field(default_factory=list)
    # (worker, peak RSS MB, CPU s during the burst, getrusage's ru_maxrss MB)

    @classmethod
    def start(cls, settings: dict[str, str], base: Path, workers: int, threads: int) -> Host:
        context = multiprocessing.get_context("spawn")
        work, results = context.Queue(), context.Queue()
        processes = [context.Process(target=_worker, name=f"functions-worker-{n}", args=(n, settings),
                                     kwargs={"work": work, "results": results, "threads": threads,
                                             "log_path": str(base / f"worker-{n}.log")})
                     for n in range(workers)]
        for process in processes:
            process.start()
        host = cls(work, results, processes, threads)
        while len(host.startup_cpu) < workers:
            message = results.get(timeout=120)
            if message[0] == "ready":
                host.startup_cpu[message[1]] = message[2]
        return host

    def stop(self) -> None:
        """Let every invocation thread finish, collect each worker's figures, reap them."""
        try:
            for _ in range(len(self.processes) * self.threads):
                self.work.put(None)
            while len(self.exits) < len(self.processes):
                message = self.results.get(timeout=120)
                if message[0] == "exit":
                    self.exits.append((message[1], message[2], message[3] - self.startup_cpu[message[1]],
                                       message[4]))
        finally:
            for process in self.processes:
                process.join(timeout=30)
                if process.is_alive():
                    process.kill()


def deliver(grid: EventGrid, host: Host, progress: bool) -> None:
    """Event Grid's loop: push what is due, take answers, until every event is settled."""
    grid.publish()
    last_report = time.monotonic()
    while not grid.settled or grid.inflight or grid.waiting:
        wait = grid.pump(time.monotonic())
        try:
            message = host.results.get(timeout=max(0.01, min(wait, 0.5)))
        except Empty:
            continue
        if message[0] == "start":
            grid.started(message[1], message[2])
        elif message[0] == "done":
            grid.done(message[1], *message[2:])
        if progress and time.monotonic() - last_report > 10:
            last_report = time.monotonic()
            print(f"  {last_report - grid.published:6.0f} s: {len(grid.acked)} acknowledged, "
                  f"{len(grid.inflight)} running, {len(grid.due)} waiting to be redelivered",
                  file=sys.stderr)


def bench_burst(*, events: int = FULL["events"], workers: int = FULL["workers"],
                threads: int = FULL["threads"], schedule_scale: float = FULL["schedule_scale"],
                limits: ServiceLimits = LIMITS, settings_overrides: dict[str, str] | None = None,
                progress: bool = False) -> Result:
    """Run one burst; ``limits`` and ``settings_overrides`` are for exploring (the goals are
    stated for the documented limits and the product's defaults)."""
    with rigs.postgres() as server, tempfile.TemporaryDirectory(prefix="akv-rotator-burst-") as tmp, \
            KeyVaultTwin(vault_name="kv-bench", cert_dir=Path(tmp) / "twin", limits=limits) as twin:
        base = Path(tmp)
        wanted = rigs.logins(events)
        rigs.seed(server, twin, wanted)
        settings = rigs.app_environment(twin, server, base / "journal.db", **(settings_overrides or {}))
        payloads = [twin.emit(login.secret, NEAR_EXPIRY) for login in wanted]
        host = Host.start(settings, base, workers, threads)
        try:
            load = rigs.background_load()
            twin.reset_limits()  # count the burst only
            grid = EventGrid(payloads, host.work, schedule_scale)
            meter = rigs.CpuMeter(server)
            meter.start()
            deliver(grid, host, progress)
            meter.stop()
        finally:
            host.stop()
        stats = twin.throttle_stats()
        rotations, duplicated, missing = _journal_check(base / "journal.db", twin, wanted)
        failing = rigs.logins_failing(twin, server, [login.secret for login in wanted])
        logs = _read_logs(base, workers)
    durations = sorted(grid.invocations)
    buckets = Counter(int((when - grid.published) // 10) for when in grid.acked.values())
    exits = sorted(host.exits)
    return Result(
        events=events, workers=workers, threads=threads, schedule_scale=schedule_scale,
        creates_quota=limits.creates, window=limits.window, overrides=dict(settings_overrides or {}),
        seconds=(max(grid.acked.values()) - grid.published) if grid.acked else 0.0,
        seconds_to_99=_quantile_seconds(grid, 0.99),
        rotations=rotations, duplicated=duplicated, missing=missing,
        logins_failing=len(failing), dead_lettered=len(grid.dead),
        creates_served=stats["create"].served, creates_refused=stats["create"].refused,
        others_served=stats["other"].served, others_refused=stats["other"].refused,
        deliveries=sum(grid.deliveries.values()),
        deliveries_per_event=dict(sorted(Counter(grid.deliveries.values()).items())),
        timed_out=len(grid.timed_out),
        invocation_seconds={"median": round(statistics.median(durations), 3),
                            "p95": round(durations[int(0.95 * (len(durations) - 1))], 3),
                            "max": round(durations[-1], 3)} if durations else {},
        outcomes=logs["outcomes"], retry_sleeps=logs["retry_sleeps"],
        throttled_releases=logs["throttled"],
        rss_mb=[round(rss, 1) for _, rss, _, _ in exits],
        ru_maxrss_mb=[round(maxrss, 1) for _, _, _, maxrss in exits],
        worker_cpu_seconds=[round(cpu, 1) for _, _, cpu, _ in exits],
        cpu={"wall_seconds": round(meter.wall, 1), "machine_utilisation": round(meter.utilisation, 3),
             "machine_steal": round(meter.steal, 3),
             "driver_and_twin_seconds": round(meter.driver, 1),
             "postgres_seconds": round(meter.postgres, 1), "machine_busy_seconds": round(meter.machine, 1),
             "capacity_seconds": round(meter.machine_capacity, 1), "load_before": round(load, 3)},
        acked_per_10s=[buckets.get(n, 0) for n in range(max(buckets, default=-1) + 1)],
    )


def _quantile_seconds(grid: EventGrid, share: float) -> float:
    """Seconds from publishing until ``share`` of the events were acknowledged."""
    acked = sorted(grid.acked.values())
    if not acked:
        return 0.0
    wanted = max(1, math.ceil(share * len(grid.payloads)))
    return acked[min(wanted, len(acked)) - 1] - grid.published


def _journal_check(path: Path, twin: KeyVaultTwin,
                   wanted: list[rigs.Login]) -> tuple[dict[str, int], int, int]:
    """Rotations by status; secrets rotated more than once, and not at all (journal or vault)."""
    from rotation.journal import SqliteJournal

    journal = SqliteJournal(path)
    statuses: Counter[str] = Counter()
    duplicated = missing = 0
    for login in wanted:
        records = journal.for_secret(twin.vault_name, login.secret)
        statuses.update(r.status for r in records)
        succeeded = sum(r.status == "succeeded" for r in records)
        new_versions = len(twin.store.list_versions(login.secret, None, 1000).items) - 1
        if succeeded > 1 or new_versions > 1:
            duplicated += 1
        elif succeeded == 0 or new_versions == 0:
            missing += 1
    return dict(statuses), duplicated, missing


def _read_logs(base: Path, workers: int) -> dict[str, Any]:
    """What the workers' JSON log lines say about outcomes, retries and throttling."""
    outcomes: Counter[str] = Counter()
    sleeps, slept, throttled = 0, 0.0, 0
    for n in range(workers):
        path = base / f"worker-{n}.log"
        if not path.exists():
            continue
        for line in path.read_text(errors="replace").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            event = record.get("event")
            if event in ("event handled", "event will be retried", "event ignored", "rotation failed",
                         "configuration error; event will be retried"):
                outcomes[f"{event}: {record.get('outcome')}"] += 1
            elif event == "transient failure, retrying":
                sleeps += 1
                slept += float(record.get("wait_seconds") or 0.0)
            elif event == "rotation throttled; it comes back later":
                throttled += 1
    return {"outcomes": dict(sorted(outcomes.items())),
            "retry_sleeps": {"count": sleeps, "seconds": round(slept, 1)}, "throttled": throttled}


def describe(result: Result) -> list[str]:
    def verdict(met: bool) -> str:
        return "met" if met else "NOT met"

    cpu = result.cpu
    ours = sum(result.worker_cpu_seconds) + cpu["driver_and_twin_seconds"] + cpu["postgres_seconds"]
    others = max(0.0, cpu["machine_busy_seconds"] - ours)
    return [
        f"burst: {result.events} SecretNearExpiry events, {result.workers} worker processes x "
        f"{result.threads} concurrent invocations, Event Grid's schedule x{result.schedule_scale:g}"
        + (f", settings {result.overrides}" if result.overrides else ""),
        f"  rotations by status (journal): {result.rotations}; duplicated {result.duplicated}, "
        f"missing {result.missing}, dead-lettered {result.dead_lettered}; logins failing "
        f"{result.logins_failing} (goal: 0 failed, 0 duplicated, all log in): "
        f"{verdict(result.correct)}",
        f"  {result.succeeded} rotations in {result.seconds:.1f} s = {result.rate:.2f}/s; creates served "
        f"{result.creates_served} ({result.creates_per_rotation:.2f} per rotation), refused "
        f"{result.creates_refused}; other served {result.others_served}, refused {result.others_refused}",
        f"  99 % of the events were acknowledged after {result.seconds_to_99:.1f} s (the rest is the tail)",
        f"  ceiling {result.creates_quota}/{result.window:g} s / {result.creates_per_rotation:.2f} = "
        f"{result.ceiling:.2f} rotations/s",
        f"  throughput {result.fraction:.3f} of the ceiling (goal >= {THROUGHPUT_GOAL}): "
        f"{verdict(result.fraction >= THROUGHPUT_GOAL)}",
        f"  peak RSS per worker {result.rss_mb} MB (goal <= {RSS_GOAL_MB:g} MB): "
        f"{verdict(result.peak_rss_mb <= RSS_GOAL_MB)}",
        f"  deliveries {result.deliveries} ({result.deliveries_per_event} deliveries: events), "
        f"timed out {result.timed_out}; invocation seconds {result.invocation_seconds}",
        f"  handler outcomes: {result.outcomes}",
        f"  per-call retry sleeps: {result.retry_sleeps}; rotations sent back by throttling: "
        f"{result.throttled_releases}",
        f"  CPU: machine {cpu['machine_utilisation']:.0%} busy ({cpu['machine_steal']:.0%} stolen by the "
        f"hypervisor) over {cpu['wall_seconds']} s; workers "
        f"{result.worker_cpu_seconds} s, driver+twin {cpu['driver_and_twin_seconds']} s, PostgreSQL "
        f"{cpu['postgres_seconds']} s, anything else {others:.1f} s (machine {cpu['load_before']:.0%} "
        "busy before the burst)",
        f"  acknowledged per 10 s: {result.acked_per_10s}",
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.burst",
                                     description="A burst of near-expiry events against Key Vault's limits.")
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK['events']} events, {QUICK['workers']} workers, the schedule x0.01: "
                             "proves it runs")
    parser.add_argument("--events", type=int)
    parser.add_argument("--workers", type=int)
    parser.add_argument("--threads", type=int, help="concurrent invocations per worker process")
    parser.add_argument("--schedule-scale", type=float, help="Event Grid's schedule x this")
    parser.add_argument("--creates", type=int,
                        help=f"exploring: the create quota per 10 s instead of {LIMITS.creates}")
    parser.add_argument("--set", action="append", default=[], metavar="SETTING=VALUE",
                        help="exploring: an app setting changed from the product's default")
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args(argv)
    size: dict[str, Any] = dict(QUICK if args.quick else FULL)
    for key in ("events", "workers", "threads", "schedule_scale"):
        if getattr(args, key) is not None:
            size[key] = getattr(args, key)
    limits = LIMITS if args.creates is None else replace(LIMITS, creates=args.creates)
    overrides = dict(item.split("=", 1) for item in args.set)
    result = bench_burst(**size, limits=limits, settings_overrides=overrides, progress=not args.quick)
    for line in describe(result):
        print(line)
    if args.json:
        args.json.write_text(json.dumps(result.to_json(), indent=2) + "\n")


if __name__ == "__main__":
    main()
