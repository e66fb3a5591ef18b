"""The engine: default deny, deny wins, rule ids, names refused before policy, obligations."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from bastion.policy import DEFAULT_DENY, INVALID_NAME, Approval, PolicyRequest, RecentAuth
from bastion.policy.engine import MAX_PLANS
from tests.policy.helpers import MONDAY_NOON, policy, request

ALLOW_DEV = {"id": "dev", "effect": "allow", "roles": ["developer"], "tools": ["srv__*"]}
DENY_EXEC = {"id": "no-exec", "effect": "deny", "roles": ["*"], "tools": ["srv__exec"]}


def test_az1_empty_policy_denies_by_default() -> None:
    decision = policy([]).decide(request())
    assert not decision.allowed
    assert decision.rule_id == DEFAULT_DENY
    assert "no rule allows tools/call on tool 'srv__tool'" in decision.explanation


def test_az1_allow_names_the_rule() -> None:
    decision = policy([ALLOW_DEV]).decide(request())
    assert decision.allowed
    assert decision.rule_id == "dev"
    assert "allowed by rule dev" in decision.explanation


def test_az1_role_and_principal_decide_who() -> None:
    engine = policy(
        [ALLOW_DEV, {**ALLOW_DEV, "id": "carol", "roles": None, "principals": ["carol"]}]
    )
    assert not engine.decide(request(roles=("viewer",))).allowed
    assert engine.decide(request(roles=(), principal="carol")).rule_id == "carol"


@pytest.mark.parametrize("order", [[ALLOW_DEV, DENY_EXEC], [DENY_EXEC, ALLOW_DEV]])
def test_deny_wins_over_allow_in_any_order(order: list[dict[str, object]]) -> None:
    decision = policy(order).decide(request(name="srv__exec"))
    assert not decision.allowed
    assert decision.rule_id == "no-exec"
    assert policy(order).decide(request(name="srv__read")).rule_id == "dev"


def test_reported_rule_is_first_in_file_order_among_the_winning_effect() -> None:
    second = {**ALLOW_DEV, "id": "dev2"}
    assert policy([ALLOW_DEV, second]).decide(request()).rule_id == "dev"
    assert policy([second, ALLOW_DEV]).decide(request()).rule_id == "dev2"


def test_method_only_rule_and_targetless_requests() -> None:
    engine = policy([{"id": "list", "effect": "allow", "roles": ["*"], "methods": ["tools/list"]}])
    assert engine.decide(request("tools/list", kind=None)).allowed
    assert not engine.decide(request("tools/call")).allowed
    # A rule that names tools never applies to a request without a target.
    assert not policy([ALLOW_DEV]).decide(request("tools/list", kind=None)).allowed


def test_rule_with_tools_does_not_apply_to_resources_or_prompts() -> None:
    engine = policy([ALLOW_DEV])
    assert not engine.decide(request("resources/read", kind="resource", name="srv__x")).allowed
    assert not engine.decide(request("prompts/get", kind="prompt", name="srv__x")).allowed


@pytest.mark.parametrize(
    "name",
    [
        "SRV__tool",
        "srv__Tool",
        "srv__tool ",
        " srv__tool",
        "srv__tool\u200b",
        "srv__t\u043e\u043el",
    ],
)
def test_az3_names_match_exactly_and_case_sensitively(name: str) -> None:
    exact = {"id": "exact", "effect": "allow", "roles": ["developer"], "tools": ["srv__tool"]}
    assert policy([exact]).decide(request(name="srv__tool")).allowed
    assert not policy([exact]).decide(request(name=name)).allowed


@pytest.mark.parametrize(
    "name", ["", "a" * 129, "srv tool", "srv/tool", "srv__tool\x00", "srv__t\u043e\u043el", "a:b"]
)
def test_az3_names_outside_the_alphabet_are_refused_before_any_rule(name: str) -> None:
    everything = {"id": "all", "effect": "allow", "principals": ["*"], "tools": ["**"]}
    decision = policy([everything]).decide(request(name=name))
    assert (decision.effect, decision.rule_id) == ("deny", INVALID_NAME)


def test_az3_resource_uris_must_be_printable_ascii() -> None:
    everything = {"id": "all", "effect": "allow", "principals": ["*"], "resources": ["**"]}
    engine = policy([everything])
    assert engine.decide(request("resources/read", kind="resource", name="file:///a")).allowed
    for bad in ("file:///a b", "file:///é", "file:///a\n", "x" * 4097):
        decision = engine.decide(request("resources/read", kind="resource", name=bad))
        assert decision.rule_id == INVALID_NAME


@pytest.mark.parametrize(
    "spelling",
    [
        "ev+file:///docs/.%65nv",  # an escaped unreserved letter: the upstream reads ".env"
        "ev+file:///docs/%2Eenv",  # an escaped dot
        "ev+file:///docs/.e%6Ev",
        "ev+file:///docs/.en%76",
        "ev+file:///docs/%7Ekey",  # escaped tilde
        "ev+file:///docs/a%2fb",  # lower-case hex: not the normal form of %2F
        "ev+file:///docs/a%",  # a broken escape
        "ev+file:///docs/a%4",
    ],
)
def test_az3_a_uri_spelled_with_needless_escapes_is_refused_not_matched(spelling: str) -> None:
    """AZ-3, IN-4: rules match the URI as sent and the upstream decodes it, so a deny rule
    on ``**/.env`` would be stepped around by ``.%65nv``; such spellings are refused before
    any rule, the normal one is decided by the rules."""
    rules = [
        {"id": "docs", "effect": "allow", "principals": ["*"], "resources": ["ev+file:///**"]},
        {
            "id": "no-env",
            "effect": "deny",
            "principals": ["*"],
            "resources": ["ev+file:///**/.env"],
        },
    ]
    engine = policy(rules)
    normal = engine.decide(request("resources/read", kind="resource", name="ev+file:///docs/.env"))
    assert (normal.effect, normal.rule_id) == ("deny", "no-env")
    fine = "ev+file:///docs/a%20b%2Fc%C3%A9"  # reserved, space and non-ASCII stay escaped
    assert engine.decide(request("resources/read", kind="resource", name=fine)).rule_id == "docs"
    decision = engine.decide(request("resources/read", kind="resource", name=spelling))
    assert (decision.effect, decision.rule_id) == ("deny", INVALID_NAME)
    assert "normal form" in decision.explanation


def test_claim_and_principal_bindings_grant_roles() -> None:
    engine = policy(
        [ALLOW_DEV],
        principals=[
            {"principal": "ci-*", "roles": ["developer"]},
            {"claim": "groups", "value": "eng", "roles": ["developer"]},
        ],
    )
    assert engine.decide(request(roles=(), principal="ci-build")).allowed
    assert engine.decide(request(roles=(), claims={"groups": ["x", "eng"]})).allowed
    assert engine.decide(request(roles=(), claims={"groups": "eng"})).allowed
    assert not engine.decide(request(roles=(), claims={"groups": ["engineering"]})).allowed
    assert not engine.decide(request(roles=(), principal="build-ci")).allowed


def test_security_levels_attach_obligations_to_allows_only() -> None:
    security = {
        "tools": {
            "srv__delete*": {"level": "high", "approval": "human"},
            "srv__delete_all": {"level": "high", "step_up": {"recent_auth": "10m"}},
            "srv__*": {"level": "medium", "step_up": None},
        }
    }
    engine = policy([ALLOW_DEV, DENY_EXEC], security=security)
    strict = engine.decide(request(name="srv__delete_all"))
    assert strict.allowed and strict.level == "high"
    assert set(strict.obligations) == {RecentAuth(max_age=600), Approval()}
    assert engine.decide(request(name="srv__read")).level == "medium"
    assert engine.decide(request(name="srv__read")).obligations == ()
    denied = engine.decide(request(name="srv__exec"))
    assert denied.obligations == () and denied.level is None


@pytest.mark.parametrize("order", [("human", "admin"), ("admin", "human")])
def test_tc6_admin_approval_is_stricter_than_human_whatever_the_order(
    order: tuple[str, str],
) -> None:
    first, second = order
    security = {
        "tools": {
            "srv__delete*": {"level": "high", "approval": first},
            "srv__delete_all": {"level": "high", "approval": second},
        }
    }
    engine = policy([ALLOW_DEV], security=security)
    assert engine.decide(request(name="srv__delete_all")).obligations == (Approval(by="admin"),)
    assert engine.decide(request(name="srv__delete_one")).obligations == (Approval(by=first),)


def test_request_time_must_be_timezone_aware() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        PolicyRequest(principal="p", method="ping", at=datetime(2025, 1, 1))


def test_time_in_another_zone_is_compared_in_utc() -> None:
    rule = {**ALLOW_DEV, "when": {"time": {"hours": [9, 17]}}}
    # 18:30 at UTC+8 is 10:30 UTC: inside the window.
    at = datetime(2025, 1, 6, 18, 30, tzinfo=timezone(timedelta(hours=8)))
    assert policy([rule]).decide(request(at=at)).allowed
    assert not policy([rule]).decide(request(at=MONDAY_NOON.replace(hour=8))).allowed


def test_explain_agrees_with_decide_and_says_why_not() -> None:
    engine = policy([DENY_EXEC, ALLOW_DEV])
    decision, traces = engine.explain(request(name="srv__read"))
    assert decision == engine.decide(request(name="srv__read"))
    assert [(t.rule_id, t.applies) for t in traces] == [("no-exec", False), ("dev", True)]
    assert traces[0].reason == "tool 'srv__read' not in ['srv__exec']"


def test_az1_planned_decisions_still_evaluate_each_requests_conditions() -> None:
    """The plan for (principal, roles, method, target) is reused, the conditions are not:
    the same tool asked twice with different arguments (or at another hour) is decided
    on each request's own arguments and time."""
    engine = policy(
        [
            {
                "id": "no-pw",
                "effect": "deny",
                "roles": ["developer"],
                "tools": ["srv__*"],
                "when": {"args": {"text": {"glob": "*password*"}}},
            },
            {
                "id": "office",
                "effect": "allow",
                "roles": ["developer"],
                "tools": ["srv__*"],
                "when": {"time": {"hours": [9, 17]}},
            },
        ]
    )
    assert engine.decide(request(arguments={"text": "hello"})).rule_id == "office"
    assert engine.decide(request(arguments={"text": "my password"})).rule_id == "no-pw"
    assert engine.decide(request(arguments={"text": "hello"})).rule_id == "office"
    late = request(arguments={"text": "hello"}, at=MONDAY_NOON.replace(hour=20))
    assert engine.decide(late).rule_id == "default-deny"
    assert engine.decide(request(arguments={"text": "hello"})).allowed


def test_az1_the_plan_table_is_bounded() -> None:
    engine = policy([{"id": "all", "effect": "allow", "roles": ["developer"], "tools": ["*"]}])
    for i in range(MAX_PLANS + 10):
        assert engine.decide(request(name=f"srv__t{i}")).allowed
    assert len(engine._plans) <= MAX_PLANS


@pytest.mark.parametrize(
    ("uri", "normal"),
    [
        ("wk+workspace://demo/./secret/key", False),
        ("wk+workspace://demo/secret//key", False),
        ("wk+workspace://demo/pub/../secret/key", False),
        ("wk+workspace://demo/secret/key/", False),
        ("wk+workspace://demo/secret/.", False),
        ("wk+workspace://demo/secret/key", True),
        ("wk+workspace://demo", True),
        ("wk+workspace://demo/a.b/.c/..d", True),  # dots inside a segment are letters
        ("wk+file:///", True),
        ("wk+note://hello", True),
        ("wk+urn:x:y", True),
        ("wk+workspace://demo/a?next=../b//c", True),  # the query is not the path
        ("fk+doc:./secret/key", False),  # an opaque path is read the same way
        ("fk+doc:pub/../secret/key", False),
        ("fk+doc:pub//key", False),
        ("fk+doc:secret/key", True),
        ("fk+mailto:a@example.com", True),
    ],
)
def test_az3_a_uri_with_dot_or_empty_segments_is_refused_before_any_rule(
    uri: str, normal: bool
) -> None:
    """AZ-3, IN-4: an upstream reads ``demo/./secret/key`` as ``demo/secret/key``, past a
    deny on the latter; so dot and empty path segments are refused like needless escapes."""
    everything = {"id": "all", "effect": "allow", "principals": ["*"], "resources": ["**"]}
    decision = policy([everything]).decide(request("resources/read", kind="resource", name=uri))
    assert (decision.rule_id == INVALID_NAME) is not normal
    if not normal:
        assert "empty segments" in decision.explanation
