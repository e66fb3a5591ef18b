"""Argument conditions cannot be dodged by re-typing a value (AZ-1): a deny holds for any
value an upstream may read at its path, an allow only for all of them."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bastion.policy.values import MAX_ARG_VALUES
from tests.policy.helpers import policy, request

ALLOW_ALL = {"id": "all", "effect": "allow", "roles": ["developer"], "tools": ["srv__*"]}


def deny_when(args: dict[str, Any]) -> list[dict[str, Any]]:
    deny = {"id": "no", "effect": "deny", "roles": ["developer"], "tools": ["srv__tool"]}
    return [ALLOW_ALL, {**deny, "when": {"args": args}}]


def allow_when(args: dict[str, Any]) -> list[dict[str, Any]]:
    allow = {"id": "only", "effect": "allow", "roles": ["developer"], "tools": ["srv__tool"]}
    return [{**allow, "when": {"args": args}}]


def denied(rules: list[dict[str, Any]], arguments: dict[str, Any]) -> bool:
    decision = policy(rules).decide(request(arguments=arguments))
    return decision.rule_id == "no" and not decision.allowed


def allowed(rules: list[dict[str, Any]], arguments: dict[str, Any]) -> bool:
    return policy(rules).decide(request(arguments=arguments)).allowed


@pytest.mark.parametrize(
    ("test", "arguments"),
    [
        ({"path": {"glob": "secret/**"}}, {"path": ["secret/key"]}),
        ({"path": {"glob": "secret/**"}}, {"path": ["pub/a", ["./secret/key"]]}),
        ({"path": {"glob": "secret/**"}}, {"path": {"0": "secret/key"}}),
        ({"limit": {"gt": 1000}}, {"limit": "5000"}),
        ({"limit": {"gt": 1000}}, {"limit": [5000]}),
        ({"limit": {"gt": 1000}}, {"limit": ["5e3"]}),
        ({"limit": {"gt": 1000}}, {"limit": "+5000.0"}),
        ({"limit": {"gt": 1000}}, {"limit": "1e999"}),  # infinity to the upstream too
        ({"opts.mode": {"equals": 777}}, {"opts": {"mode": "777"}}),
        ({"opts.mode": {"equals": 777}}, {"opts.mode": 777}),
        ({"opts.mode": {"equals": 777}}, {"opts": [{"mode": 644}, {"mode": 777}]}),
        ({"opts.mode": {"equals": "777"}}, {"opts": {"mode": 777}}),
        ({"opts.mode": {"in": [777, 776]}}, {"opts": {"mode": "776"}}),
        ({"force": {"equals": True}}, {"force": "true"}),
        ({"a.b.c": {"equals": 1}}, {"a": {"b.c": 1}}),
    ],
)
def test_az1_a_deny_condition_holds_for_a_retyped_value(
    test: dict[str, Any], arguments: dict[str, Any]
) -> None:
    assert denied(deny_when(test), arguments)


@pytest.mark.parametrize(
    ("test", "arguments"),
    [
        ({"limit": {"gt": 1000}}, {"limit": "5000abc"}),  # not wholly a number
        ({"limit": {"gt": 1000}}, {"limit": " 5000"}),
        ({"limit": {"gt": 1000}}, {"limit": [10, "20"]}),
        ({"limit": {"ge": 10, "le": 20}}, {"limit": [5, 25]}),  # no one value in range
        ({"path": {"glob": "secret/**"}}, {"path": []}),
        ({"opts.mode": {"equals": 777}}, {"opts": {"mode": "777 "}}),
        ({"force": {"equals": True}}, {"force": 1}),
    ],
)
def test_a_deny_still_needs_one_value_that_passes_every_test(
    test: dict[str, Any], arguments: dict[str, Any]
) -> None:
    assert not denied(deny_when(test), arguments)


@pytest.mark.parametrize(
    ("arguments", "holds"),
    [
        ({"path": "public/x"}, True),
        ({"path": ["public/x", "public/y/z"]}, True),
        ({"path": ["public/x", "secret/y"]}, False),  # a smuggled element
        ({"path": ["public/x", ["secret/y"]]}, False),
        ({"path": ["public/x", 5]}, False),
        ({"path": []}, False),  # nothing to test is not a pass
        ({"path": {"a": "public/x"}}, False),  # an object is not a path
    ],
)
def test_az1_an_allow_condition_holds_only_when_every_value_passes(
    arguments: dict[str, Any], holds: bool
) -> None:
    assert allowed(allow_when({"path": {"glob": "public/**"}}), arguments) is holds


def test_an_allow_needs_the_nested_path_and_strict_types() -> None:
    mode = allow_when({"opts.mode": {"equals": 644}})
    assert allowed(mode, {"opts": {"mode": 644}})
    assert not allowed(mode, {"opts.mode": 644})  # the upstream reads no opts.mode there
    assert not allowed(mode, {"opts": {"mode": 644}, "opts.mode": 777})
    assert not allowed(mode, {"opts": [{"mode": 644}, {}]})
    assert allowed(mode, {"opts": [{"mode": 644}, {"mode": 644.0}]})
    assert not allowed(mode, {"opts": {"mode": "644"}})
    assert not allowed(allow_when({"limit": {"le": 100}}), {"limit": "50"})


def test_az1_too_many_values_deny_and_do_not_allow() -> None:
    many = ["pub/x"] * (MAX_ARG_VALUES + 1)
    assert denied(deny_when({"path": {"glob": "secret/**"}}), {"path": many})
    assert not allowed(allow_when({"path": {"glob": "pub/**"}}), {"path": many})
    assert allowed(allow_when({"path": {"glob": "pub/**"}}), {"path": many[:100]})
    deep: object = "secret/key"
    for _ in range(5000):
        deep = [deep]
    assert denied(deny_when({"path": {"glob": "secret/**"}}), {"path": deep})


def test_explain_names_the_value_that_failed() -> None:
    engine = policy(allow_when({"path": {"glob": "public/**"}}))
    _, traces = engine.explain(request(arguments={"path": ["public/x", "secret/y"]}))
    assert traces[0].reason == "args.path 'secret/y' does not match glob 'public/**'"
    _, traces = engine.explain(request(arguments={"path": []}))
    assert traces[0].reason == "args.path is missing"


scalars = st.one_of(
    st.integers(-3, 3), st.sampled_from(["secret/a", "pub/a", "3", "x", True, None, 2.5])
)
TESTS = [
    {"path": {"glob": "secret/**"}},
    {"path": {"equals": 3}},
    {"path": {"in": ["x", 2]}},
    {"path": {"ge": 1}},
    {"path": {"equals": None}},
]


@given(st.sampled_from(TESTS), scalars, st.lists(scalars, max_size=3), st.integers(0, 3))
def test_wrapping_a_value_never_escapes_a_deny_nor_earns_an_allow(
    test: dict[str, Any], value: object, others: list[object], where: int
) -> None:
    wrapped = [*others[:where], value, *others[where:]]
    shapes: list[object] = [[value], wrapped, {"k": value}, [[value]]]
    if denied(deny_when(test), {"path": value}):
        assert all(denied(deny_when(test), {"path": shape}) for shape in shapes)
    for shape in (wrapped, [[value, *others]]):
        if allowed(allow_when(test), {"path": shape}):
            assert all(allowed(allow_when(test), {"path": v}) for v in [value, *others])
