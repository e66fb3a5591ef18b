"""TC-4, AZ-1: the URIs of resources a tool result or prompt embeds or links come back as the
client reads them through the gateway (the server's URI prefix), like ``resources/read``
contents; nothing else in the answer changes."""

from __future__ import annotations

from typing import Any

from bastion.gateway.embedded import namespaced_prompt, namespaced_result

EMBEDDED = {"type": "resource", "resource": {"uri": "note://a", "text": "x"}}
LINK = {"type": "resource_link", "uri": "note://b", "name": "b"}
TEXT = {"type": "text", "text": "note://c"}


def test_tc4_embedded_and_linked_uris_get_the_servers_prefix_TC4() -> None:
    result: dict[str, Any] = {"content": [TEXT, EMBEDDED, LINK], "structuredContent": {}}
    out = namespaced_result(result, "fs+")
    assert out["content"] == [
        TEXT,
        {"type": "resource", "resource": {"uri": "fs+note://a", "text": "x"}},
        {"type": "resource_link", "uri": "fs+note://b", "name": "b"},
    ]
    assert out["content"][0] is TEXT and out["structuredContent"] is result["structuredContent"]
    assert EMBEDDED["resource"]["uri"] == "note://a"  # the input is not modified


def test_tc4_a_prompts_embedded_resource_gets_the_servers_prefix_TC4() -> None:
    first = {"role": "user", "content": TEXT}
    result = {"messages": [first, {"role": "assistant", "content": LINK}], "description": "d"}
    out = namespaced_prompt(result, "fs+")
    assert out["messages"][0] is first
    assert out["messages"][1] == {"role": "assistant", "content": {**LINK, "uri": "fs+note://b"}}


def test_tc4_bare_servers_and_answers_without_uris_come_back_identical_TC4() -> None:
    """A bare server's URIs are exposed as they are; a URI that is not a string is left for
    the policy to refuse (``pipeline.embedded``)."""
    result = {"content": [TEXT, EMBEDDED, LINK]}
    assert namespaced_result(result, "") is result
    odd = {"content": [TEXT, {"type": "resource_link", "uri": 5}, {"type": "resource"}]}
    assert namespaced_result(odd, "fs+") is odd
    prompt = {"messages": [{"role": "user", "content": TEXT}]}
    assert namespaced_prompt(prompt, "fs+") is prompt
