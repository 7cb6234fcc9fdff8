"""The matching benchmark measures real work: its cluster holds the ExternalSecrets it promises,
and the verdicts it times include the expected ``annotate`` ones (timings are never asserted)."""

from __future__ import annotations

from collections import Counter

import pytest

from bench.matching import (
    HIT_CES,
    HITS,
    QUICK,
    ROTATED,
    TAGS,
    VAULT,
    bench_matching,
    build_world,
    check,
    crd_dir,
)
from rotation.propagation.matching import match

# Six ExternalSecrets read the rotated secret, plus the ClusterExternalSecret HIT_CES.
EXPECTED = {"annotate": 7, "annotate-parent": 3, "report": 2}


def test_the_cluster_has_exactly_the_externals_asked_for() -> None:
    world = build_world(**QUICK)
    kinds = Counter(obj["kind"] for obj in world.objects)
    assert kinds["ExternalSecret"] == QUICK["externals"]
    assert kinds["Namespace"] == QUICK["namespaces"]
    assert kinds["SecretStore"] >= QUICK["namespaces"]
    assert kinds["ClusterSecretStore"] >= 1
    keys = [(obj["metadata"].get("namespace"), obj["kind"], obj["metadata"]["name"]) for obj in world.objects]
    assert len(keys) == len(set(keys))
    owned = [obj for obj in world.objects if obj["metadata"].get("ownerReferences")]
    assert {obj["metadata"]["ownerReferences"][0]["name"] for obj in owned} >= {HIT_CES}
    assert {hit.name for hit in HITS} <= {name for _, _, name in keys}


def test_the_check_refuses_verdicts_that_miss_an_annotation() -> None:
    world = build_world(**QUICK)
    verdicts = match(VAULT, ROTATED, TAGS, world.objects)
    assert {action: check(world, verdicts)[action] for action in EXPECTED} == EXPECTED
    dropped = next(v for v in verdicts if v.action == "annotate")
    with pytest.raises(RuntimeError, match="verdicts"):
        check(world, [v for v in verdicts if v is not dropped])
    other_secret = match(VAULT, "db-admin", TAGS, world.objects)
    with pytest.raises(RuntimeError, match="'annotate' verdicts differ"):
        check(world, other_secret)


@pytest.mark.parametrize("validated", [True, False], ids=["with-crds", "without-crds"])
def test_quick_benchmark_times_the_expected_verdicts(validated: bool) -> None:
    crds = crd_dir() if validated else None
    if validated and crds is None:
        pytest.skip("ESO CRDs not found (AKV_ROTATOR_ESO_CRDS or ../shared/eso-crds)")
    result = bench_matching(**QUICK, repeat=1, crds=crds)
    assert result.actions["annotate"] == EXPECTED["annotate"]
    assert {action: result.actions[action] for action in EXPECTED} == EXPECTED
    assert result.validated is validated
    assert result.ours > 0 and result.baseline > 0 and result.match_only > 0
