"""AZ-2: list results are filtered by the same decisions as calls."""

from __future__ import annotations

from bastion.policy import listing_request
from tests.policy.helpers import policy, request

RULES = [
    {"id": "read", "effect": "allow", "roles": ["developer"], "tools": ["srv__get_*"]},
    {
        "id": "write-ws",
        "effect": "allow",
        "roles": ["developer"],
        "tools": ["srv__write"],
        "when": {"args": {"path": {"glob": "/ws/**"}}},
    },
    {"id": "no-secret", "effect": "deny", "roles": ["*"], "tools": ["srv__get_secret"]},
    {
        "id": "no-etc",
        "effect": "deny",
        "roles": ["*"],
        "tools": ["srv__write"],
        "when": {"args": {"path": {"glob": "/etc/**"}}},
    },
    {"id": "docs", "effect": "allow", "roles": ["viewer"], "resources": ["file:///docs/**"]},
    {"id": "prompts", "effect": "allow", "roles": ["developer"], "prompts": ["review"]},
]
TOOLS = ["srv__get_issue", "srv__get_secret", "srv__write", "srv__delete", "bad name"]


def test_az2_denied_tools_never_appear() -> None:
    engine = policy(RULES)
    listed = engine.filter_list(request("tools/list", kind=None), "tool", TOOLS, str)
    # srv__write is listed: an allow with argument conditions may apply to a later call,
    # and the deny with argument conditions refuses only some calls (decided per call).
    assert listed == ["srv__get_issue", "srv__write"]


def test_az2_listed_conditional_tool_is_still_decided_per_call() -> None:
    engine = policy(RULES)
    assert engine.decide(request(name="srv__write", arguments={"path": "/ws/a"})).allowed
    assert not engine.decide(request(name="srv__write", arguments={"path": "/etc/x"})).allowed
    assert not engine.decide(request(name="srv__write")).allowed


def test_az2_resources_and_prompts_by_role() -> None:
    engine = policy(RULES)
    base = request("resources/list", kind=None, roles=("viewer",))
    uris = ["file:///docs/a.md", "file:///etc/passwd"]
    assert engine.filter_list(base, "resource", uris, str) == ["file:///docs/a.md"]
    assert engine.filter_list(base, "prompt", ["review"], str) == []
    dev = request("prompts/list", kind=None)
    assert engine.filter_list(dev, "prompt", ["review", "other"], str) == ["review"]


def test_filter_list_takes_any_item_with_a_name() -> None:
    items = [{"name": t} for t in TOOLS]
    listed = policy(RULES).filter_list(request(kind=None), "tool", items, lambda i: i["name"])
    assert listed == [{"name": "srv__get_issue"}, {"name": "srv__write"}]


def test_listing_request_is_the_call_the_item_stands_for() -> None:
    listed = listing_request(request("tools/list", kind=None, arguments={"x": 1}), "tool", "a")
    assert (listed.method, listed.target, listed.arguments, listed.listing) == (
        "tools/call",
        listed.target,
        {},
        True,
    )
    assert listed.target is not None and listed.target.name == "a"
