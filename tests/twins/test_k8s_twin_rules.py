"""The Kubernetes twin's pure rules, checked against their specifications' own examples.

RFC 7386 appendix A (merge patch), RFC 6902 (JSON patch), the label-selector grammar, the
strategic-merge directives, structural-schema pruning/defaulting/validation wording, and
RBAC rule matching. No server is started.
"""

from __future__ import annotations

from typing import Any

import pytest

from twins.kubernetes.errors import ApiError
from twins.kubernetes.patch import json_patch, merge_patch, strategic_merge_patch
from twins.kubernetes.rbac import Attributes, Identity, PolicyRule, authorize
from twins.kubernetes.schema import admit
from twins.kubernetes.selectors import labels_match, parse_field_selector, parse_label_selector, path_getter

# RFC 7386, Appendix A: (original, patch, result)
RFC7386_EXAMPLES: list[tuple[Any, Any, Any]] = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


@pytest.mark.parametrize(("original", "patch", "result"), RFC7386_EXAMPLES)
def test_merge_patch_matches_rfc7386_appendix_a(original: Any, patch: Any, result: Any) -> None:
    assert merge_patch(original, patch) == result


def test_merge_patch_leaves_its_inputs_alone() -> None:
    original = {"a": {"b": [1]}}
    merge_patch(original, {"a": {"c": 2}})
    assert original == {"a": {"b": [1]}}


def test_strategic_merge_directives() -> None:
    original = {
        "metadata": {"finalizers": ["a", "b"]},
        "spec": {
            "containers": [{"name": "app", "image": "1"}, {"name": "side", "image": "1"}],
            "args": ["x"],
        },
    }
    patch = {
        "metadata": {"finalizers": ["c", "a"], "$deleteFromPrimitiveList/finalizers": ["b"]},
        "spec": {
            "$setElementOrder/containers": [{"name": "app"}],
            "containers": [{"name": "side", "$patch": "delete"}, {"name": "new", "image": "2"}],
            "args": ["y"],
        },
    }
    result = strategic_merge_patch(original, patch)
    assert result["metadata"]["finalizers"] == ["a", "c"]
    assert result["spec"]["containers"] == [{"name": "app", "image": "1"}, {"name": "new", "image": "2"}]
    assert result["spec"]["args"] == ["y"]  # no merge key: replaced
    replaced = strategic_merge_patch(original, {"spec": {"$patch": "replace", "args": []}})
    assert replaced["spec"] == {"args": []}
    with pytest.raises(ApiError) as caught:
        strategic_merge_patch(original, {"spec": {"$retainKeys": ["args"]}})
    assert caught.value.code == 400


def test_json_patch_operations() -> None:
    document = {"a": [1, 2], "b": {"c": "d"}}
    result = json_patch(
        document,
        [
            {"op": "add", "path": "/a/-", "value": 3},
            {"op": "add", "path": "/a/0", "value": 0},
            {"op": "move", "from": "/b/c", "path": "/e"},
            {"op": "copy", "from": "/e", "path": "/b/c~1x"},
            {"op": "remove", "path": "/a/1"},
            {"op": "test", "path": "/e", "value": "d"},
        ],
    )
    assert result == {"a": [0, 2, 3], "b": {"c/x": "d"}, "e": "d"}
    assert document == {"a": [1, 2], "b": {"c": "d"}}
    for operations in (
        [{"op": "remove", "path": "/missing"}],
        [{"op": "replace", "path": "/a/9", "value": 1}],
        [{"op": "test", "path": "/b/c", "value": "other"}],
        [{"op": "frobnicate", "path": "/a"}],
        [{"op": "add", "path": "/a/-"}],
    ):
        with pytest.raises(ApiError) as caught:
            json_patch(document, operations)
        assert caught.value.code == 422
    with pytest.raises(ApiError):
        json_patch(document, {"op": "add"})


@pytest.mark.parametrize(
    ("selector", "labels", "matches"),
    [
        ("", {}, True),
        ("app=web", {"app": "web"}, True),
        ("app==web", {"app": "db"}, False),
        ("app!=web", {}, True),
        ("app!=web", {"app": "web"}, False),
        ("tier in (a, b)", {"tier": "b"}, True),
        ("tier in (a,b)", {}, False),
        ("tier notin (a,b)", {}, True),
        ("tier notin (a,b)", {"tier": "a"}, False),
        ("app", {"app": ""}, True),
        ("!app", {"app": ""}, False),
        ("app=,x", {"app": "", "x": "1"}, True),
        ("example.com/owner=team-a", {"example.com/owner": "team-a"}, True),
        ("replicas>2", {"replicas": "3"}, True),
        ("replicas<2", {"replicas": "3"}, False),
        ("app=web, tier in (db), !legacy", {"app": "web", "tier": "db"}, True),
    ],
)
def test_label_selectors(selector: str, labels: dict[str, str], matches: bool) -> None:
    requirements = parse_label_selector(selector)
    assert labels_match(requirements, {"metadata": {"labels": labels}}) is matches


@pytest.mark.parametrize("selector", ["app in (a", "a b", "=x", "replicas>x", "app in (a b)"])
def test_malformed_label_selectors_are_400(selector: str) -> None:
    with pytest.raises(ApiError) as caught:
        parse_label_selector(selector)
    assert caught.value.code == 400


def test_field_selectors() -> None:
    supported = {
        "metadata.name": path_getter("metadata.name"),
        "spec.target.name": path_getter(".spec.target.name"),
    }
    parsed = parse_field_selector("metadata.name==a,spec.target.name!=b", supported, custom=True)
    obj = {"metadata": {"name": "a"}, "spec": {}}
    assert all(requirement.matches(getter(obj)) for requirement, getter in parsed)
    with pytest.raises(ApiError) as caught:
        parse_field_selector("spec.x=1", supported, custom=True)
    assert (
        caught.value.message
        == '"spec.x" is not a known field selector: only "metadata.name", "spec.target.name"'
    )


SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "apiVersion": {"type": "string"},
        "kind": {"type": "string"},
        "metadata": {"type": "object"},
        "spec": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "maxLength": 5, "pattern": "^[a-z]+$"},
                "mode": {"type": "string", "enum": ["A", "B"], "default": "A"},
                "interval": {
                    "x-kubernetes-int-or-string": True,
                    "anyOf": [{"type": "integer"}, {"type": "string"}],
                },
                "nested": {
                    "type": "object",
                    "default": {},
                    "properties": {
                        "depth": {"type": "integer", "default": 1, "minimum": 1, "format": "int32"}
                    },
                },
                "tags": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "optional": {"type": "string", "nullable": True},
            },
        },
    },
}


def test_schema_prunes_defaults_and_validates() -> None:
    outcome = admit(SCHEMA, {"metadata": {"anything": 1}, "spec": {"name": "abc", "extra": 1}, "top": 2})
    assert outcome.errors == []
    assert sorted(outcome.pruned) == ["spec.extra", "top"]
    assert outcome.obj == {
        "metadata": {"anything": 1},
        "spec": {"name": "abc", "mode": "A", "nested": {"depth": 1}},
    }

    bad = {
        "spec": {
            "name": "abcdef\n",
            "mode": "C",
            "interval": True,
            "nested": {"depth": 0},
            "tags": ["x", "x"],
            "labels": {"k": 1},
            "optional": None,
        }
    }
    messages = [str(e) for e in admit(SCHEMA, bad).errors]
    assert messages == [
        "spec.name: Too long: may not be more than 5 bytes",
        "spec.name: Invalid value: \"abcdef\\n\": spec.name in body should match '^[a-z]+$'",
        'spec.mode: Unsupported value: "C": supported values: "A", "B"',
        'spec.interval: Invalid value: "boolean": '
        'spec.interval in body must be of type integer,string: "boolean"',
        "spec.nested.depth: Invalid value: 0: spec.nested.depth in body should be greater than or equal to 1",
        'spec.tags[1]: Duplicate value: "x"',
        'spec.labels[k]: Invalid value: "integer": spec.labels[k] in body must be of type string: "integer"',
    ]
    assert [str(e) for e in admit(SCHEMA, {"spec": {}}).errors] == ["spec.name: Required value"]


def test_rbac_subresources_and_wildcards() -> None:
    status_only = Identity("u", (PolicyRule(("patch",), ("external-secrets.io",), ("*/status",)),))
    authorize(
        status_only, Attributes("patch", "external-secrets.io", "externalsecrets", "status", "apps", "x")
    )
    with pytest.raises(ApiError) as caught:
        authorize(status_only, Attributes("patch", "external-secrets.io", "externalsecrets", "", "apps", "x"))
    assert caught.value.code == 403
    one_string = PolicyRule(verbs="get", api_groups="", resources="secrets")  # type: ignore[arg-type]
    assert one_string.verbs == ("get",)
    assert one_string.allows(Attributes("get", "", "secrets", namespace="a"))
    assert not one_string.allows(Attributes("get", "", "secrets", "status", "a"))
