"""Property tests of the engine (AZ-1, AZ-2): random rule sets and requests.

Small alphabets make rules and requests collide often, so the properties are exercised on
matching rules, not only on default-deny.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.policy import Policy, PolicyFile, PolicyRequest, Target, listing_request

ROLES = ["admin", "developer", "viewer"]
NAMES = ["a__x", "a__y", "b__x", "A__x", "bad name", ""]
URIS = ["file:///a/b", "file:///a/.env", "mem://x"]
METHODS = ["tools/call", "resources/read", "prompts/get", "tools/list", "ping"]

arg_tests = st.one_of(
    st.fixed_dictionaries({"glob": st.sampled_from(["1*", "*", "x"])}),
    st.fixed_dictionaries({"le": st.integers(-2, 2)}),
    st.fixed_dictionaries({"in": st.lists(st.sampled_from([1, "x", True]), min_size=1)}),
    st.fixed_dictionaries({"equals": st.sampled_from([1, "x", None, False])}),
)
conditions = st.fixed_dictionaries(
    {},
    optional={
        "args": st.dictionaries(st.sampled_from(["x", "y.z"]), arg_tests, min_size=1),
        "time": st.fixed_dictionaries(
            {},
            optional={
                "weekdays": st.lists(st.sampled_from(["mon", "sat"]), min_size=1, unique=True),
                "hours": st.sampled_from([[0, 12], [12, 24], [22, 6]]),
            },
        ),
    },
)


@st.composite
def rule(draw: st.DrawFn, effect: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"effect": effect or draw(st.sampled_from(["allow", "deny"]))}
    who = draw(st.sampled_from(["roles", "principals", "both"]))
    if who in ("roles", "both"):
        out["roles"] = draw(st.lists(st.sampled_from([*ROLES, "*", "dev*"]), min_size=1))
    if who in ("principals", "both"):
        out["principals"] = draw(st.lists(st.sampled_from(["p", "q", "*"]), min_size=1))
    if draw(st.booleans()):
        out["methods"] = draw(st.lists(st.sampled_from([*METHODS, "tools/*", "**"]), min_size=1))
    globs = st.sampled_from(["a__x", "a__*", "*__x", "*", "a__?", "b__x", "A__x"])
    if draw(st.booleans()):
        out["tools"] = draw(st.lists(globs, min_size=1, max_size=3))
    if draw(st.booleans()):
        out["resources"] = draw(
            st.lists(st.sampled_from(["file:///**", "file:///a/*", "mem://*"]), min_size=1)
        )
    if draw(st.booleans()):
        out["prompts"] = draw(st.lists(globs, min_size=1))
    if "methods" not in out and not {"tools", "resources", "prompts"} & out.keys():
        out["methods"] = ["tools/call"]
    if draw(st.booleans()):
        out["when"] = draw(conditions)
    return out


def build(rules: list[dict[str, Any]]) -> Policy:
    numbered = [{"id": f"r{i}", **r} for i, r in enumerate(rules)]
    document = {"roles": dict.fromkeys(ROLES), "rules": numbered}
    return Policy(msgspec.convert(document, PolicyFile))


def renumber(rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**r, "id": f"r{i}"} for i, r in enumerate(rules)]


@st.composite
def requests(draw: st.DrawFn) -> PolicyRequest:
    kind = draw(st.sampled_from([None, "tool", "resource", "prompt"]))
    target = None
    if kind is not None:
        name = draw(st.sampled_from(URIS if kind == "resource" else NAMES))
        target = Target(kind, name)
    value = st.one_of(st.integers(-3, 3), st.sampled_from(["x", "1a", True, None]))
    return PolicyRequest(
        principal=draw(st.sampled_from(["p", "q", "r"])),
        roles=tuple(draw(st.lists(st.sampled_from([*ROLES, "other"]), max_size=2))),
        method=draw(st.sampled_from(METHODS)),
        target=target,
        arguments=draw(st.dictionaries(st.sampled_from(["x", "y"]), value | st.just({"z": 1}))),
        at=datetime(2025, 1, 6, tzinfo=UTC) + timedelta(hours=draw(st.integers(0, 24 * 7))),
        listing=draw(st.booleans()),
    )


rule_sets = st.lists(rule(), max_size=12)


@settings(max_examples=200, deadline=None)
@given(rule_sets, requests())
def test_no_crash_and_explain_agrees_with_the_index(rules: list[Any], req: PolicyRequest) -> None:
    engine = build(rules)
    decision = engine.decide(req)
    explained, traces = engine.explain(req)
    assert explained == decision
    if traces:
        applied = [t for t in traces if t.applies]
        assert decision.allowed == (bool(applied) and all(t.effect == "allow" for t in applied))


@settings(max_examples=200, deadline=None)
@given(st.data(), rule_sets, requests())
def test_effect_is_invariant_under_any_permutation(
    data: st.DataObject, rules: list[Any], req: PolicyRequest
) -> None:
    shuffled = data.draw(st.permutations([{"id": f"r{i}", **r} for i, r in enumerate(rules)]))
    original = build(rules).decide(req)
    document = {"roles": dict.fromkeys(ROLES), "rules": shuffled}
    permuted = Policy(msgspec.convert(document, PolicyFile)).decide(req)
    assert permuted.effect == original.effect
    if original.rule_id in {"default-deny", "invalid-name"}:
        assert permuted.rule_id == original.rule_id


@settings(max_examples=200, deadline=None)
@given(rule_sets, rule(effect="deny"), st.integers(0, 12), requests())
def test_adding_a_deny_never_turns_a_deny_into_an_allow(
    rules: list[Any], deny: dict[str, Any], at: int, req: PolicyRequest
) -> None:
    before = build(rules).decide(req)
    after = build(renumber([*rules[:at], deny, *rules[at:]])).decide(req)
    if not before.allowed:
        assert not after.allowed


@settings(max_examples=200, deadline=None)
@given(rule_sets, rule(effect="allow"), st.integers(0, 12), requests())
def test_adding_an_allow_never_turns_an_allow_into_a_deny(
    rules: list[Any], allow: dict[str, Any], at: int, req: PolicyRequest
) -> None:
    before = build(rules).decide(req)
    after = build(renumber([*rules[:at], allow, *rules[at:]])).decide(req)
    if before.allowed:
        assert after.allowed
    if after.allowed and not before.allowed:
        # Only the new rule can have made the difference, and no deny applies.
        _, traces = build(renumber([*rules[:at], allow, *rules[at:]])).explain(req)
        assert [t for t in traces if t.applies] == [traces[min(at, len(rules))]]


@settings(max_examples=200, deadline=None)
@given(rule_sets, requests(), st.sampled_from(["tool", "resource", "prompt"]))
def test_az2_filter_list_equals_per_item_decide(
    rules: list[Any], req: PolicyRequest, kind: Any
) -> None:
    engine = build(rules)
    items = URIS if kind == "resource" else NAMES
    expected = [i for i in items if engine.decide(listing_request(req, kind, i)).allowed]
    assert engine.filter_list(req, kind, items, str) == expected


@settings(max_examples=150, deadline=None)
@given(rule_sets, st.lists(requests(), min_size=2, max_size=12))
def test_one_engine_deciding_many_requests_agrees_with_explain_for_each(
    rules: list[Any], reqs: list[PolicyRequest]
) -> None:
    """The engine plans per (principal, roles, method, target, listing) and reuses the plan:
    requests sharing that key but not their arguments or time must still be decided each on
    their own (AZ-1). The small alphabets make keys repeat often; each request is asked twice,
    and a variant of it that differs only in arguments and time is asked too."""
    engine = build(rules)
    for req in reqs:
        variant = msgspec.structs.replace(req, arguments=reqs[0].arguments, at=reqs[-1].at)
        for asked in (req, variant, req):
            assert engine.decide(asked) == engine.explain(asked)[0]
