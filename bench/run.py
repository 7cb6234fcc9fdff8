"""``python -m bench.run``: how much the rotator adds on top of what it cannot avoid.

Each benchmark times the project's code and a baseline doing the unavoidable part of the same
work, in the same process and run, and reports the ratio (machine speed cancels out):

- event parsing: :func:`rotation.events.parse_event` on the published payload shapes, against
  ``json.loads`` of the same payloads (the worker has to decode them anyway);
- journaling one rotation on SQLite (begin, claim, seven step advances, close), against the
  same number of raw ``sqlite3`` writes of similar rows, each in its own transaction;
- peak memory of holding 10,000 parsed events (tracemalloc), against holding the same events
  decoded by ``json.loads``;
- propagation matching (:mod:`bench.matching`): LISTing the ESO objects of 500 namespaces and
  10,000 ExternalSecrets from the Kubernetes twin through the official client, then
  :func:`rotation.propagation.matching.match` on them, against the LIST alone (goal: x1.2 at
  most). It checks the verdicts it times;
- cold start (:mod:`bench.cold_start`): a fresh interpreter importing ``function_app`` and
  indexing its functions, against a bare app importing only ``azure.functions``,
  ``azure.keyvault.secrets`` and ``azure.identity`` (goal: x1.3 at most), with cached bytecode;
  and the same without any bytecode, as the deployed zip runs (for information);
- one rotation (:mod:`bench.rotation_cost`): a PostgreSQL rotation through ``function_app``
  against a script making only the necessary calls (goal: x1.15 at most);
- the sweep (:mod:`bench.sweep`): ``function_app.sweeper`` fanning out on Azurite's queue over
  10,000 secrets, against paging through them (goal: x1.2 at most);
- a burst (:mod:`bench.burst`): 1,000 near-expiry events through worker processes against Key
  Vault's service limits; its row is the throughput as a fraction of what the create quota
  allows (goal: 0.8 at least), and it checks every rotation and reports memory per worker.

``--quick`` runs the matching benchmark on a small cluster (25 namespaces, 400
ExternalSecrets), the cold start with a few interpreters and the last three at tiny sizes: the
test suite uses it to prove every benchmark runs, never to time them. ``--json PATH`` also
writes every ratio, and the last three benchmarks' full reports, to ``PATH``.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench import burst, cold_start, rotation_cost, sweep
from bench.matching import CRD_NOTE, FULL, QUICK, bench_matching, crd_dir
from rotation.events import parse_event
from rotation.ids import RotationId, SecretName, VaultName, VersionId
from rotation.journal import SqliteJournal
from rotation.journal.model import STEPS, RotationRecord

PAYLOADS = Path(__file__).resolve().parent.parent / "tests" / "payloads"


def best_of(action: Callable[[], object], repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return min(times)


def payload_texts() -> list[str]:
    return [path.read_text() for path in sorted(PAYLOADS.glob("*.json"))] * 400


def parse_wire(text: str) -> object:
    """Decode and parse one payload of either schema (CloudEvents names its fields apart)."""
    event = json.loads(text)
    return parse_event(event_id=event["id"], event_type=event.get("eventType", event.get("type")),
                       topic=event.get("topic", event.get("source")), subject=event["subject"],
                       data=event["data"])


def bench_parsing() -> tuple[float, float]:
    texts = payload_texts()

    def baseline() -> None:
        for text in texts:
            json.loads(text)

    def ours() -> None:
        for text in texts:
            parse_wire(text)

    return best_of(ours), best_of(baseline)


def bench_journal(rotations: int = 30) -> tuple[float, float]:
    workdir = Path(tempfile.mkdtemp(prefix="akv-rotator-bench-"))
    journal = SqliteJournal(workdir / "journal.db")
    raw = sqlite3.connect(workdir / "raw.db", isolation_level=None)
    raw.execute("PRAGMA journal_mode=WAL")
    raw.execute("CREATE TABLE rows (partition TEXT, row TEXT, data TEXT, etag INTEGER,"
                " PRIMARY KEY (partition, row))")

    def ours() -> None:
        for _ in range(rotations):
            now = datetime.now(UTC)
            record = RotationRecord(
                rotation_id=RotationId(uuid.uuid4().hex), vault=VaultName("kv-bench"),
                secret=SecretName(f"s-{uuid.uuid4().hex[:8]}"),
                from_version=VersionId(uuid.uuid4().hex), trigger_source="event",
                trigger_reference="bench", trigger_event_type="SecretNearExpiry",
                created_at=now, updated_at=now)
            journal.begin(record, now=now)
            record = journal.claim(record.rotation_id, owner="bench", now=now,
                                   ttl=timedelta(minutes=5))
            for step in STEPS[1:]:
                record = journal.advance(record, now=now, ttl=timedelta(minutes=5), step=step)
            journal.close(record, now=now, status="succeeded")

    def baseline() -> None:
        for _ in range(rotations):
            partition = uuid.uuid4().hex
            raw.execute("BEGIN IMMEDIATE")
            for row in ("head", "claim", "rot"):
                raw.execute("INSERT INTO rows VALUES (?, ?, ?, 1)", (partition, row, "{}"))
            raw.execute("COMMIT")
            for etag in range(1, len(STEPS) + 2):
                raw.execute("BEGIN IMMEDIATE")
                raw.execute("UPDATE rows SET data = ?, etag = ? WHERE partition = ? AND row = ?"
                            " AND etag = ?", ('{"step": 1}', etag + 1, partition, "rot", etag))
                raw.execute("COMMIT")

    return best_of(ours, repeat=3), best_of(baseline, repeat=3)


def bench_memory() -> tuple[int, int]:
    texts = payload_texts() * 5

    tracemalloc.start()
    decoded = [json.loads(text) for text in texts]
    _, baseline_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del decoded

    tracemalloc.start()
    events = []
    for text in texts:
        events.append(parse_wire(text))
    _, ours_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return ours_peak, baseline_peak


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.run",
                                     description="How much the rotator adds on top of what it cannot avoid.")
    parser.add_argument("--quick", action="store_true",
                        help="matching on a small cluster, few cold starts, tiny bursts and sweeps: "
                             "proves the benchmarks run")
    parser.add_argument("--json", type=Path, help="also write the ratios and full reports here")
    args = parser.parse_args(argv)
    rows = []
    ours, base = bench_parsing()
    rows.append(("event parsing vs json.loads", ours / base))
    ours, base = bench_journal()
    rows.append(("SQLite journal per rotation vs raw sqlite3 writes", ours / base))
    peak, base_peak = bench_memory()
    rows.append(("peak memory, 10k parsed events vs 10k decoded JSON", peak / base_peak))
    size = QUICK if args.quick else FULL
    crds = crd_dir()
    if crds is None:
        print(CRD_NOTE, file=sys.stderr)
    matching = bench_matching(**size, repeat=2 if args.quick else 5, crds=crds)
    rows.append((f"ESO matching, LIST + match vs LIST of {size['externals']} ES (goal x1.2)", matching.ratio))
    cold = cold_start.bench_cold_start(**(cold_start.QUICK if args.quick else cold_start.FULL))
    rows.append((f"cold start, import + index function_app vs bare app (goal x{cold_start.GOAL})",
                 cold.cached.ratio))
    if cold.source is not None:
        rows.append(("cold start without bytecode (the deployed zip) vs bare app", cold.source.ratio))
    cost = rotation_cost.bench_rotation_cost(**(rotation_cost.QUICK if args.quick else rotation_cost.FULL))
    rows.append((f"one PostgreSQL rotation vs the necessary calls (goal x{rotation_cost.GOAL})", cost.ratio))
    rows.append(("  the protocol's floor (ADR 0003's pending copy, journal) vs the necessary calls",
                 cost.floor_ratio))
    rows.append(("  one PostgreSQL rotation vs the protocol's floor", cost.ratio_to_floor))
    swept = sweep.bench_sweep(**(sweep.QUICK if args.quick else sweep.FULL))
    rows.append((f"sweep of {swept.secrets} secrets vs listing them (goal x{sweep.GOAL})", swept.ratio))
    burst_size = burst.QUICK if args.quick else burst.FULL
    burst_result = burst.bench_burst(**burst_size)
    rows.append((f"burst, rotations/s vs the create quota's ceiling (goal >= x{burst.THROUGHPUT_GOAL})",
                 burst_result.fraction))
    for line in [*rotation_cost.describe(cost), *sweep.describe(swept), *burst.describe(burst_result)]:
        print(line)
    width = max(len(name) for name, _ in rows)
    for name, ratio in rows:
        print(f"{name:<{width}}  x{ratio:5.2f}")
    ratios = {name: round(ratio, 3) for name, ratio in rows}
    if args.json:
        args.json.write_text(json.dumps({"ratios": ratios, "rotation_cost": cost.to_json(),
                                         "sweep": swept.to_json(), "burst": burst_result.to_json()},
                                        indent=2) + "\n")
    print(json.dumps(ratios))


if __name__ == "__main__":
    main()
