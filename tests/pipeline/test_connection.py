"""The guarded connection: every request of one caller through the stages, and the caller
bound to what the MCP layer hands out across requests (AZ-1: a 2026-07-28 ``requestState``)."""

from __future__ import annotations

import secrets

import pytest

from bastion.fixture import build_fixture_app
from bastion.protocol.request_state import RequestStateSealer
from tests.pipeline.support import principal, raw_guarded

pytestmark = pytest.mark.anyio

ASKS = "test_input_required_result_request_state"
CAPS = {"io.modelcontextprotocol/clientCapabilities": {"elicitation": {}}}
ANSWER = {"confirm": {"action": "accept", "content": {"ok": True}}}


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
