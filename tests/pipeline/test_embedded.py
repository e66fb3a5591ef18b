"""AZ-1: each resource a tool result or prompt embeds or links is decided as the caller's
``resources/read`` of its URI; one refused (or allowed only under an obligation) becomes a
placeholder, counted in the request's audit detail."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bastion._types import JSONObject
from bastion.pipeline.embedded import WITHHELD_TEXT, withhold_unreadable
from bastion.policy.decision import PolicyRequest, Target
from tests.pipeline.support import policy

POLICY = policy("""
version: 1
roles:
  dev: {}
rules:
  - id: notes
    effect: allow
    roles: [dev]
    resources: ["fs+note://**"]
  - id: no-private
    effect: deny
    roles: [dev]
    resources: ["fs+note://private"]
""")
REQUEST = PolicyRequest(
    principal="alice",
    method="tools/call",
    at=datetime.now(UTC),
    roles=("dev",),
    target=Target("tool", "fs__embed"),
)
WITHHELD = {"type": "text", "text": WITHHELD_TEXT}


def _resource(uri: Any) -> JSONObject:
    return {"type": "resource", "resource": {"uri": uri, "text": "contents"}}


def test_az1_unreadable_embedded_and_linked_resources_are_withheld_AZ1() -> None:
    text = {"type": "text", "text": "hi"}
    readable = _resource("fs+note://public")
    content = [
        text,
        readable,
        _resource("fs+note://private"),
        {"type": "resource_link", "uri": "fs+note://private", "name": "p"},
        {"type": "resource_link", "uri": "other+x://y", "name": "y"},  # default deny
        _resource(None),  # no URI to decide on
    ]
    detail: JSONObject = {}
    out = withhold_unreadable({"content": content}, "tools/call", detail, POLICY.decide, REQUEST)
    assert isinstance(out, dict)
    assert out["content"] == [text, readable, WITHHELD, WITHHELD, WITHHELD, WITHHELD]
    assert out["content"][1] is readable and detail == {"withheldResources": 4}


def test_az1_a_prompts_unreadable_embedded_resource_is_withheld_AZ1() -> None:
    messages = [
        {"role": "user", "content": {"type": "text", "text": "hi"}},
        {"role": "user", "content": _resource("fs+note://private")},
    ]
    detail: JSONObject = {}
    result = {"messages": messages, "description": "d"}
    out = withhold_unreadable(result, "prompts/get", detail, POLICY.decide, REQUEST)
    assert out == {
        "messages": [messages[0], {"role": "user", "content": WITHHELD}],
        "description": "d",
    }
    assert detail == {"withheldResources": 1}


def test_az1_results_without_unreadable_resources_come_back_identical_AZ1() -> None:
    detail: JSONObject = {}
    plain = {"content": [{"type": "text", "text": "hi"}]}
    assert withhold_unreadable(plain, "tools/call", detail, POLICY.decide, REQUEST) is plain
    fine = {"messages": [{"role": "user", "content": _resource("fs+note://public")}]}
    assert withhold_unreadable(fine, "prompts/get", detail, POLICY.decide, REQUEST) is fine
    read = {"contents": [{"uri": "fs+note://private", "text": "x"}]}
    assert withhold_unreadable(read, "resources/read", detail, POLICY.decide, REQUEST) is read
    assert detail == {}
