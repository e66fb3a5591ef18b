"""Resources embedded in, or linked from, tool results and prompts, against a real
``bastion serve`` fronting a real stdio upstream (``tests/security/upstreams/leaker.py``).

AZ-1: alice may read ``leaker+note://public`` but not ``leaker+note://private``; a tool
result or a prompt that embeds (or links) the private note delivers a placeholder instead,
in both protocol eras, and the call's audit record counts what was withheld. TC-4: the URIs
of embedded resources and links come back namespaced (``leaker+note://public``, which alice
reads back through the gateway), and a ``text/plain`` blob carrying a secret is masked, in a
tool result as in a ``resources/read``.
"""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.pipeline.live import Gateway, answer_of, serve, wait_until
from tests.security.upstreams.leaker import AWS_KEY, GITHUB_TOKEN, PRIVATE_TEXT, PUBLIC_TEXT

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

LEAKER = Path(__file__).resolve().parent.parent / "security" / "upstreams" / "leaker.py"
WITHHELD = {
    "type": "text",
    "text": "[Bastion withheld an embedded resource: the caller may not read it.]",
}
POLICY = """\
version: 1
roles:
  admin: {description: operators}
  dev: {description: developers}
rules:
  - id: dev
    effect: allow
    roles: [dev]
    methods: [initialize, ping, "notifications/*", tools/list, prompts/list, resources/list]
  - id: dev-use
    effect: allow
    roles: [dev]
    tools: [leaker__embed]
    prompts: [leaker__brief]
    resources: ["leaker+note://public", "leaker+note://blob"]
  - id: admin-all
    effect: allow
    roles: [admin]
    methods: ["**"]
"""


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    servers = f"""\
  leaker:
    command: {sys.executable}
    args: [{json.dumps(str(LEAKER))}]
    env: {{LEAK_TOKEN: "Zq7-upstream-credential-9f3k2m"}}
"""
    keys = {"alice": ("dev",), "admin": ("admin",)}
    with serve(tmp_path_factory.mktemp("embedded"), servers, POLICY, keys) as gateway:
        wait_until(lambda: "leaker__embed" in gateway.tools("alice"))
        yield gateway


def _read(gw: Gateway, uri: str) -> dict[str, Any]:
    answer = gw.modern("alice", "resources/read", {"uri": uri}, headers={"mcp-name": uri})
    body: dict[str, Any] = answer.json()
    return body


def _withheld_counts(gw: Gateway, method: str) -> list[Any]:
    return [
        r["detail"].get("withheldResources")
        for r in gw.audit()
        if r["kind"] == "request" and r["method"] == method and r["principal"] == "apikey:alice"
    ]


def test_az1_a_tool_result_embedding_a_denied_resource_delivers_a_placeholder_AZ1(
    gw: Gateway,
) -> None:
    """AZ-1: alice may not read ``leaker+note://private`` (she is refused when she asks);
    ``embed`` returns it embedded and linked, and she receives a placeholder for each, never
    its text; the call's audit record counts the two."""
    assert _read(gw, "leaker+note://private")["error"]["message"] == "Denied by policy"
    answer = gw.call("alice", "leaker__embed", {})
    content = answer["result"]["content"]
    assert PRIVATE_TEXT not in json.dumps(answer)
    assert "note://private" not in json.dumps(answer)
    assert content[0] == {"type": "text", "text": "here are the notes"}
    assert content[1] == WITHHELD and content[2] == WITHHELD
    assert 2 in _withheld_counts(gw, "tools/call")


def test_az1_a_prompt_embedding_a_denied_resource_delivers_a_placeholder_AZ1(
    gw: Gateway,
) -> None:
    """AZ-1: ``brief`` embeds the private note in its second message; through a 2025-11-25
    session and a 2026-07-28 request alike, alice gets the placeholder in its place."""
    session = gw.session("alice")
    legacy = answer_of(session.request("prompts/get", {"name": "leaker__brief"}))
    session.close()
    modern = gw.modern("alice", "prompts/get", {"name": "leaker__brief"}).json()
    for answer in (legacy, modern):
        assert PRIVATE_TEXT not in json.dumps(answer)
        first, second = answer["result"]["messages"]
        assert first["content"] == {"type": "text", "text": "Brief me."}
        assert second == {"role": "user", "content": WITHHELD}
    assert _withheld_counts(gw, "prompts/get").count(1) >= 2


def test_tc4_embedded_uris_come_back_namespaced_and_readable_TC4(gw: Gateway) -> None:
    """TC-4: the public note, embedded and linked, comes back as ``leaker+note://public``
    (as ``resources/list`` names it, not the upstream's bare ``note://public``), and alice
    reads that URI back through the gateway."""
    content = gw.call("alice", "leaker__embed", {})["result"]["content"]
    embedded, link = content[3], content[4]
    assert embedded["type"] == "resource"
    assert embedded["resource"]["uri"] == "leaker+note://public"
    assert link == {"type": "resource_link", "uri": "leaker+note://public", "name": "public"}
    read = _read(gw, link["uri"])
    assert read["result"]["contents"][0]["text"] == PUBLIC_TEXT


def test_tc4_a_text_blob_carrying_a_secret_is_masked_TC4(gw: Gateway) -> None:
    """TC-4: a ``text/plain`` base64 blob is text to the model that reads it: the GitHub
    token in the embedded one, and the AWS key in the ``note://blob`` read, are masked, the
    rest of the text and its encoding kept."""
    content = gw.call("alice", "leaker__embed", {})["result"]["content"]
    blob = content[3]["resource"]["blob"]
    assert base64.b64decode(blob).decode() == f"{PUBLIC_TEXT}, key [REDACTED]"
    assert content[3]["resource"]["mimeType"] == "text/plain; charset=utf-8"
    read = _read(gw, "leaker+note://blob")["result"]["contents"][0]
    assert base64.b64decode(read["blob"]).decode() == "key [REDACTED]"
    assert GITHUB_TOKEN not in json.dumps(content) and AWS_KEY not in json.dumps(read)
