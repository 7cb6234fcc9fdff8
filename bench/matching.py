"""Propagation matching against the LIST it needs: ``python -m bench.matching [--quick]``.

A Kubernetes twin holds 500 namespaces, each with an azurekv SecretStore (most on the event's
vault, every tenth on another one, every fiftieth also a ``fake`` store), four
ClusterSecretStores (one restricted to ``env=prod`` namespaces by ``spec.conditions``),
ClusterExternalSecrets with their child ExternalSecrets, and 10,000 ExternalSecrets in all:
``data[].remoteRef`` keys with near-miss names (``db-0001``, ``db-admin``, ``secret/db-admin``,
``cert/db``...), ``dataFrom`` ``extract`` and ``find`` (regexps, tags, both), some with
``refreshPolicy: CreatedOnce`` or ``OnChange`` and a ``status`` as ESO writes it. A handful
(:data:`HITS` and one ClusterExternalSecret) really read the event's secret ``db``.

Baseline: :func:`rotation.propagation.cluster.eso_objects` through the official client (the LIST
the rotation must do anyway). Ours: the same LIST, then :func:`rotation.propagation.matching.match`
on the result. The goal (issue: "costs at most 1.2x the LIST") is ``ours / baseline <= 1.2``.
Setup (seeding the twin in-process with ``put``) is not timed. Every run checks the verdicts:
which objects are ``annotate``, ``annotate-parent`` and ``report``, so a change that made
matching find nothing cannot pass as fast.

The ESO CRDs are not needed: without them the twin serves the ESO kinds unvalidated, so objects
lack the CRD defaults a real API server adds (and are a little smaller); the output says so.
They are looked for where the tests look: ``AKV_ROTATOR_ESO_CRDS``, else ``../shared/eso-crds``
next to the checkout.
"""

from __future__ import annotations

import argparse
import gc
import random
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rotation.propagation.cluster import eso_objects
from rotation.propagation.matching import Verdict, match
from twins.kubernetes import KubernetesTwin, eso_crd_dir

GROUP_VERSION = "external-secrets.io/v1"
VAULT = "https://kv-prod.vault.azure.net"
OTHER_VAULT = "https://kv-legacy.vault.azure.net"
ROTATED = "db"
TAGS = {"owner": "platform", "rotation": "auto", "tier": "gold"}
GOAL = 1.2
FULL = {"namespaces": 500, "externals": 10_000}
QUICK = {"namespaces": 25, "externals": 400}

Obj = dict[str, Any]

# Keys that are *not* the event's secret but look like it, or are ordinary neighbours.
NEAR_MISS_KEYS = ("db-admin", "db-readonly", "dbadmin", "db2", "app-db", "secret/db-admin",
                  "secret/db-readonly", "cert/db-tls", "key/db-signing", "mongo-db", "db-replica")
# Go regexps none of which matches "db" (some are evaluated: their tags agree with the event's).
NEAR_MISS_REGEXPS = ("^db-[0-9]+$", "^db.+", "^redis-", "^(cache|queue)-[0-9]+$", "-admin$",
                     "^app-", "^svc-[a-z]+-token$", "^DB$")
APPS = ("api", "web", "worker", "billing", "search", "auth", "ledger", "notify", "reports", "ingest")


CRD_NOTE = ("note: ESO CRDs not found (set AKV_ROTATOR_ESO_CRDS, or put them in ../shared/eso-crds): the "
            "twin serves the ESO kinds unvalidated, so listed objects lack the CRD defaults")


crd_dir = eso_crd_dir  # the ESO CRD folder as the tests find it, or None


# -- the cluster ----------------------------------------------------------------------------------


def namespace_name(index: int) -> str:
    return f"team-{index:03d}"


def on_other_vault(index: int) -> bool:
    return index % 10 == 9


def is_staging(index: int) -> bool:
    return index % 7 == 3


def has_fake_store(index: int) -> bool:
    return index % 50 == 0


def team_label(index: int) -> str:
    return f"t{index % 25:02d}"


def namespace(index: int) -> Obj:
    labels = {"team": team_label(index), "env": "staging" if is_staging(index) else "prod"}
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace_name(index),
                                                                  "labels": labels}}


def secret_store(index: int) -> Iterator[Obj]:
    ns = namespace_name(index)
    vault = OTHER_VAULT if on_other_vault(index) else VAULT
    yield {"apiVersion": GROUP_VERSION, "kind": "SecretStore",
           "metadata": {"name": "azure-kv", "namespace": ns},
           "spec": {"provider": {"azurekv": {"vaultUrl": vault, "authType": "WorkloadIdentity",
                                             "serviceAccountRef": {"name": "eso-reader"}}}}}
    if has_fake_store(index):
        yield {"apiVersion": GROUP_VERSION, "kind": "SecretStore",
               "metadata": {"name": "local-fake", "namespace": ns},
               "spec": {"provider": {"fake": {"data": [{"key": "db", "value": "not-key-vault"}]}}}}


def cluster_stores() -> list[Obj]:
    def css(name: str, vault: str, **spec: Any) -> Obj:
        return {"apiVersion": GROUP_VERSION, "kind": "ClusterSecretStore", "metadata": {"name": name},
                "spec": {"provider": {"azurekv": {"vaultUrl": vault, "authType": "WorkloadIdentity",
                                                  "serviceAccountRef": {"name": "eso-reader",
                                                                        "namespace": "eso"}}},
                         **spec}}

    return [
        css("kv-shared", VAULT + "/"),  # another spelling of the event's vault
        css("kv-shared-legacy", OTHER_VAULT),
        css("kv-restricted", VAULT, conditions=[{"namespaceSelector": {"matchLabels": {"env": "prod"}}},
                                                {"namespaceRegexes": ["^platform-"]}]),
        css("kv-dr", "https://kv-prod-dr.vault.azure.net"),
    ]


def store_ref(kind: str, name: str) -> Obj:
    return {"kind": kind, "name": name}


def status(target: str) -> Obj:
    """What ESO writes once an ES has synced."""
    return {"refreshTime": "2025-01-01T00:00:00Z", "syncedResourceVersion": "1-0123456789abcdef",
            "binding": {"name": target},
            "conditions": [{"type": "Ready", "status": "True", "reason": "SecretSynced",
                            "message": "secret synced", "lastTransitionTime": "2025-01-01T00:00:00Z"}]}


def external_secret(ns: str, name: str, spec: Obj, *, owner: Obj | None = None) -> Obj:
    target = spec.get("target", {}).get("name", name)
    metadata: Obj = {"name": name, "namespace": ns, "labels": {"app.kubernetes.io/name": name}}
    if owner is not None:
        metadata["ownerReferences"] = [owner]
    return {"apiVersion": GROUP_VERSION, "kind": "ExternalSecret", "metadata": metadata,
            "spec": spec, "status": status(target)}


def remote(key: str, **extra: Any) -> Obj:
    return {"secretKey": key.rsplit("/", 1)[-1].replace("-", "_"), "remoteRef": {"key": key, **extra}}


def bulk_spec(rng: random.Random, index: int, fake: bool) -> Obj:
    """An ordinary ExternalSecret spec that does not read the event's secret."""
    spec: Obj = {"refreshInterval": rng.choice(("1h", "1h", "15m", "24h", "0")),
                 "target": {"name": f"app-secret-{index:05d}", "creationPolicy": "Owner"},
                 "secretStoreRef": bulk_store(rng, fake)}
    shape = rng.random()
    if shape < 0.6:  # data only
        keys = [f"db-{rng.randrange(10_000):04d}", *rng.sample(NEAR_MISS_KEYS, rng.randint(0, 3))]
        spec["data"] = [remote(key) for key in keys]
        if rng.random() < 0.2:
            spec["data"].append(remote(f"secret/{rng.choice(APPS)}-config", property="password"))
    else:
        items: list[Obj] = []
        if shape < 0.8:
            items.append({"extract": {"key": f"secret/{rng.choice(APPS)}-{index % 300:03d}-config"}})
        if shape >= 0.7:
            items.append(bulk_find(rng))
        spec["dataFrom"] = items
        if rng.random() < 0.3:
            spec["data"] = [remote(rng.choice(NEAR_MISS_KEYS))]
    policy = rng.random()
    if policy < 0.1:
        spec["refreshPolicy"] = "CreatedOnce"
    elif policy < 0.2:
        spec["refreshPolicy"] = "OnChange"
    return spec


def bulk_store(rng: random.Random, fake: bool) -> Obj:
    roll = rng.random()
    if fake and roll < 0.3:
        return store_ref("SecretStore", "local-fake")
    if roll < 0.7:
        return store_ref("SecretStore", "azure-kv")
    if roll < 0.9:
        return store_ref("ClusterSecretStore", "kv-shared")
    return store_ref("ClusterSecretStore", rng.choice(("kv-shared-legacy", "kv-restricted", "kv-dr")))


def bulk_find(rng: random.Random) -> Obj:
    regexp = rng.choice(NEAR_MISS_REGEXPS)
    which = rng.random()
    if which < 0.4:  # tags agree with the event's: the regexp is evaluated
        return {"find": {"name": {"regexp": regexp}, "tags": {"owner": "platform"}}}
    if which < 0.7:  # tags differ: decided before the regexp
        return {"find": {"name": {"regexp": regexp}, "tags": {"app": rng.choice(APPS), "owner": "platform"}}}
    return {"find": {"name": {"regexp": regexp}}}


@dataclass(frozen=True)
class Hit:
    """An ExternalSecret that names the event's secret, where it lives, and the verdict it must get."""

    name: str
    action: str
    where: Callable[[int], bool]
    spec: Obj


def _plain(**extra: Any) -> Obj:
    return {"secretStoreRef": store_ref("SecretStore", "azure-kv"), **extra}


HITS = (
    Hit("orders-db", "annotate", lambda i: not on_other_vault(i),
        _plain(data=[remote("db-0001"), remote(ROTATED), remote("db-admin")])),
    Hit("payments-db", "annotate", lambda i: True,
        {"secretStoreRef": store_ref("ClusterSecretStore", "kv-shared"),
         "data": [remote(f"secret/{ROTATED}")]}),
    Hit("inventory-db", "annotate", lambda i: not on_other_vault(i),
        _plain(dataFrom=[{"extract": {"key": ROTATED}}])),
    Hit("catalog-db", "annotate", lambda i: True,
        {"secretStoreRef": store_ref("ClusterSecretStore", "kv-shared"),
         "dataFrom": [{"find": {"name": {"regexp": "^db$"}, "tags": {"owner": "platform"}}}]}),
    Hit("everything", "annotate", lambda i: not on_other_vault(i),
        _plain(dataFrom=[{"find": {"name": {"regexp": ".*"}}}])),
    Hit("prod-only-db", "annotate", lambda i: not is_staging(i),
        {"secretStoreRef": store_ref("ClusterSecretStore", "kv-restricted"), "data": [remote(ROTATED)]}),
    Hit("staging-db", "skip", is_staging,  # kv-restricted refuses staging namespaces
        {"secretStoreRef": store_ref("ClusterSecretStore", "kv-restricted"), "data": [remote(ROTATED)]}),
    Hit("legacy-db", "skip", on_other_vault, _plain(data=[remote(ROTATED)])),
    Hit("once-db", "report", lambda i: not on_other_vault(i),
        _plain(data=[remote(ROTATED)], refreshPolicy="CreatedOnce")),
    Hit("pinned-db", "report", lambda i: not on_other_vault(i),
        _plain(data=[remote(ROTATED, version="0123456789abcdef0123456789abcdef")])),
    Hit("tls-db", "skip", lambda i: not on_other_vault(i), _plain(data=[remote(f"cert/{ROTATED}")])),
)
HIT_CES = "shared-db"  # a ClusterExternalSecret reading the event's secret in three namespaces
HIT_CES_NAMESPACES = 3


@dataclass
class World:
    """The objects to seed, and the verdicts matching must give."""

    objects: list[Obj] = field(default_factory=list)
    externals: int = 0
    cluster_externals: int = 0
    expected: dict[str, set[tuple[str, str, str]]] = field(
        default_factory=lambda: {"annotate": set(), "annotate-parent": set(), "report": set()})


def cluster_external(name: str, es_spec: Obj, **spec: Any) -> Obj:
    return {"apiVersion": GROUP_VERSION, "kind": "ClusterExternalSecret", "metadata": {"name": name},
            "spec": {"externalSecretSpec": es_spec, "refreshTime": "1m", **spec}}


def children(ces: Obj, namespaces: list[str]) -> Iterator[Obj]:
    """The ExternalSecrets ESO's CES controller creates, owned by the CES."""
    owner = {"apiVersion": GROUP_VERSION, "kind": "ClusterExternalSecret", "name": ces["metadata"]["name"],
             "uid": ces["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}
    for ns in namespaces:
        yield external_secret(ns, ces["metadata"]["name"], ces["spec"]["externalSecretSpec"], owner=owner)


def build_world(namespaces: int, externals: int, seed: int = 20250101) -> World:
    """``namespaces`` namespaces and exactly ``externals`` ExternalSecrets, deterministic per seed."""
    if namespaces < 25:
        raise ValueError("need at least 25 namespaces (one per team label)")
    rng = random.Random(seed)  # noqa: S311 -- a reproducible cluster, not a secret
    world = World()
    names = [namespace_name(i) for i in range(namespaces)]
    for index in range(namespaces):
        world.objects.append(namespace(index))
        world.objects.extend(secret_store(index))
    world.objects.extend(cluster_stores())

    # ClusterExternalSecrets: half list their namespaces, half select them by team label.
    owned: list[Obj] = []
    for number in range(max(2, namespaces // 50)):
        es_spec = bulk_spec(rng, 90_000 + number, fake=False)
        es_spec["secretStoreRef"] = store_ref("ClusterSecretStore", "kv-shared")
        name = f"shared-{rng.choice(APPS)}-{number:02d}"
        if number % 2:
            team = team_label(number)
            ces = cluster_external(name, es_spec, namespaceSelectors=[{"matchLabels": {"team": team}}])
            targets = [n for i, n in enumerate(names) if team_label(i) == team]
        else:
            targets = rng.sample(names, min(10, namespaces))
            ces = cluster_external(name, es_spec, namespaces=targets)
        ces["metadata"]["uid"] = str(uuid.UUID(int=rng.getrandbits(128)))
        world.objects.append(ces)
        owned.extend(children(ces, targets))
    hit_targets = [names[i] for i in range(namespaces) if not on_other_vault(i)][1:1 + HIT_CES_NAMESPACES]
    hit_ces = cluster_external(HIT_CES, {"secretStoreRef": store_ref("ClusterSecretStore", "kv-shared"),
                                         "data": [remote(ROTATED), remote("db-admin")]},
                               namespaces=hit_targets)
    hit_ces["metadata"]["uid"] = str(uuid.UUID(int=rng.getrandbits(128)))
    world.objects.append(hit_ces)
    owned.extend(children(hit_ces, hit_targets))
    world.cluster_externals = max(2, namespaces // 50) + 1
    world.expected["annotate"].add(("", "ClusterExternalSecret", HIT_CES))
    world.expected["annotate-parent"].update((ns, "ExternalSecret", HIT_CES) for ns in hit_targets)

    # The hits, spread over the namespaces that suit each.
    for number, hit in enumerate(HITS):
        start = number * namespaces // len(HITS)
        index = next(i for i in [*range(start, namespaces), *range(start)] if hit.where(i))
        world.objects.append(external_secret(names[index], hit.name, hit.spec))
        if hit.action in world.expected:
            world.expected[hit.action].add((names[index], "ExternalSecret", hit.name))

    if externals < len(HITS) + len(owned):
        raise ValueError(f"need at least {len(HITS) + len(owned)} ExternalSecrets here")
    world.objects.extend(owned)
    for number in range(externals - len(HITS) - len(owned)):
        index = number % namespaces
        name = f"{rng.choice(APPS)}-{number:05d}"
        spec = bulk_spec(rng, number, has_fake_store(index))
        world.objects.append(external_secret(names[index], name, spec))
    world.externals = externals
    return world


def check(world: World, verdicts: list[Verdict]) -> Counter[str]:
    """Raise unless ``verdicts`` are one per ES and CES with exactly the expected non-skips."""
    total = world.externals + world.cluster_externals
    if len(verdicts) != total:
        raise RuntimeError(f"expected {total} verdicts (one per ES and CES), got {len(verdicts)}")
    for action, expected in world.expected.items():
        got = {(v.namespace, v.kind, v.name) for v in verdicts if v.action == action}
        if got != expected:
            raise RuntimeError(f"{action!r} verdicts differ: missing {sorted(expected - got)}, "
                               f"unexpected {sorted(got - expected)}")
    return Counter(v.action for v in verdicts)


# -- the measurement ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    """Best-of times in seconds, the verdict counts, and whether the twin validated with the CRDs."""

    ours: float  # LIST + match
    baseline: float  # LIST
    match_only: float  # match on an already-listed result
    objects: int  # what one LIST returned
    actions: Counter[str]
    validated: bool

    @property
    def ratio(self) -> float:
        return self.ours / self.baseline


def best_of_pair(ours: Callable[[], object], baseline: Callable[[], object],
                 repeat: int) -> tuple[float, float]:
    """Best times of ``ours`` and ``baseline``, run alternately so both see the same machine."""
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeat):
        for action, kept in ((baseline, times[1]), (ours, times[0])):
            started = time.perf_counter()
            action()
            kept.append(time.perf_counter() - started)
    return min(times[0]), min(times[1])


def bench_matching(namespaces: int = FULL["namespaces"], externals: int = FULL["externals"],
                   repeat: int = 5, crds: Path | None = None) -> Result:
    """Seed a twin (validating with the CRDs in ``crds``, if given), check the verdicts, time it.

    The seeded objects are moved out of the collector's sight (``gc.freeze``) before timing: the
    twin lives in this process, and a real API server's memory is not the rotator's to scan.
    """
    world = build_world(namespaces, externals)
    with KubernetesTwin(crd_dir=crds) as twin:
        for obj in world.objects:
            twin.put(obj)
        world.objects.clear()
        gc.collect()
        gc.freeze()
        try:
            with twin.api_client() as api:
                listed = eso_objects(api)
                count = len(listed)
                everything = match(VAULT, ROTATED, TAGS, listed)
                actions = check(world, everything)
                acted_on = [v for v in everything if v.action != "skip"]
                if match(VAULT, ROTATED, TAGS, listed, candidates_only=True) != acted_on:
                    raise RuntimeError("candidates_only changed a verdict the rotation acts on")
                del listed, everything

                def baseline() -> None:
                    eso_objects(api)

                def ours() -> None:  # what the rotation's propagate step does
                    match(VAULT, ROTATED, TAGS, eso_objects(api), candidates_only=True)

                total, base = best_of_pair(ours, baseline, repeat)
                listed = eso_objects(api)
                alone = best_of_pair(lambda: match(VAULT, ROTATED, TAGS, listed, candidates_only=True),
                                     lambda: None, repeat)[0]
        finally:
            gc.unfreeze()
    return Result(total, base, alone, count, actions, crds is not None)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.matching",
                                     description="Propagation matching against the LIST it needs.")
    parser.add_argument("--quick", action="store_true", help="a small cluster: proves it runs")
    args = parser.parse_args(argv)
    size = QUICK if args.quick else FULL
    crds = crd_dir()
    if crds is None:
        print(CRD_NOTE, file=sys.stderr)
    result = bench_matching(**size, repeat=2 if args.quick else 5, crds=crds)
    print(f"{size['externals']} ExternalSecrets in {size['namespaces']} namespaces, {result.objects} objects "
          f"listed, CRD-validated: {result.validated}")
    print(f"LIST {result.baseline * 1000:.0f} ms; LIST + match {result.ours * 1000:.0f} ms; "
          f"match alone {result.match_only * 1000:.0f} ms")
    print(f"verdicts: {dict(sorted(result.actions.items()))}")
    print(f"ratio x{result.ratio:.3f} (goal <= x{GOAL}): {'met' if result.ratio <= GOAL else 'NOT met'}")


if __name__ == "__main__":
    main()
