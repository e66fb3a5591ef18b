"""The guarded connection: every request of one caller through the stages, and the caller
bound to what the MCP layer hands out across requests (AZ-1: a 2026-07-28 ``requestState``)
and to how its answers may be cached (AZ-2: ``cacheScope``)."""

from __future__ import annotations

import secrets

import pytest

from bastion.fixture import build_fixture_app
from bastion.protocol.request_state import RequestStateSealer
from tests.pipeline.support import principal, raw_guarded
from tests.server.raw import raw_client

pytestmark = pytest.mark.anyio

ASKS = "test_input_required_result_request_state"
CAPS = {"io.modelcontextprotocol/clientCapabilities": {"elicitation": {}}}
ANSWER = {"confirm": {"action": "accept", "content": {"ok": True}}}
LISTS = ("tools/list", "resources/list", "resources/templates/list", "prompts/list")


async def test_az1_another_principals_request_state_is_refused() -> None:
    """S2 state-handle hijacking: bob retrying with alice's requestState gets -32602, as for
    a tampered state, and alice's own retry still completes her call."""
    app, sealer = build_fixture_app(), RequestStateSealer([secrets.token_bytes(32)])
    alice, bob = principal("alice", "dev"), principal("bob", "dev")
    async with raw_guarded(app, [], alice, sealer) as c:
        first = await c.modern("tools/call", {"name": ASKS, "arguments": {}}, 1, **CAPS)
    state = first["result"]["requestState"]
    retry = {"name": ASKS, "arguments": {}, "inputResponses": ANSWER, "requestState": state}
    async with raw_guarded(app, [], bob, sealer) as c:
        hijack = await c.modern("tools/call", retry, 2, **CAPS)
    assert hijack["error"] == {"code": -32602, "message": "Invalid requestState"}
    async with raw_guarded(app, [], alice, sealer) as c:
        done = await c.modern("tools/call", retry, 3, **CAPS)
    assert "state-ok" in done["result"]["content"][0]["text"]


async def test_az2_lists_and_reads_behind_the_pipeline_are_cached_privately() -> None:
    """Behind the pipeline, lists are filtered and reads gated per principal, so a 2026-07-28
    answer says ``cacheScope: private`` (a shared cache must not serve it to another caller);
    discovery, the same for everyone, stays public. A plain server keeps public."""
    app = build_fixture_app()
    reads = {"uri": "test://static-text"}
    calls = [(m, {}) for m in LISTS] + [("resources/read", reads), ("server/discover", {})]
    async with raw_guarded(app, [], principal("alice", "dev")) as c:
        behind = {m: (await c.modern(m, p, i))["result"] for i, (m, p) in enumerate(calls)}
    async with raw_client(app) as c:
        plain = {m: (await c.modern(m, p, i))["result"] for i, (m, p) in enumerate(calls)}
    assert {m: r["cacheScope"] for m, r in behind.items()} == {
        **dict.fromkeys((*LISTS, "resources/read"), "private"),
        "server/discover": "public",
    }
    assert {r["cacheScope"] for r in plain.values()} == {"public"}
