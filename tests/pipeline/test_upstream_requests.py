"""An upstream's requests to the caller's client (sampling, elicitation, roots) are decided
by the caller's policy as that method on the call's target (AZ-1, TC-6; MCP10), in both
eras; a refused one never reaches the client and the call's audit record says so. The tools
below stand in for an upstream: the gateway relays through the very same ``ToolContext``."""

from __future__ import annotations

import pytest

from bastion._types import JSONObject
from bastion.client import ClientHandlers
from bastion.errors import BastionError, PeerError
from bastion.pipeline import AuditStage, AuthorizeStage
from bastion.pipeline.upstream_requests import PolicedCall, check_input_requests
from bastion.protocol.versions import Era
from bastion.server.registry import ServerApp
from tests.pipeline.support import MemorySink, add_asking_tool, guarded, policy, principal

pytestmark = pytest.mark.anyio

POLICY = """
version: 1
roles:
  dev: {}
rules:
  - id: handshake
    effect: allow
    roles: [dev]
    methods: [initialize, ping, "notifications/*", tools/list, server/discover]
  - id: dev-tools
    effect: allow
    roles: [dev]
    tools: ["up__*"]
  - id: no-roots
    effect: deny
    roles: [dev]
    methods: [roots/list]
  - id: calls-only
    effect: allow
    roles: [dev]
    methods: [tools/call]
    tools: ["strict__*"]
"""
SAMPLING: JSONObject = {
    "messages": [{"role": "user", "content": {"type": "text", "text": "hi"}}],
    "maxTokens": 5,
}


def asking_app(refusals: list[BastionError]) -> ServerApp:
    """Tools that ask the client one thing each, as an upstream does mid-call."""
    app = ServerApp("upstream", "1.0")

    add_asking_tool(app, "up__roots", "roots/list", {}, refusals)
    add_asking_tool(app, "up__sample", "sampling/createMessage", SAMPLING, refusals)
    add_asking_tool(app, "strict__sample", "sampling/createMessage", SAMPLING, refusals)
    return app


def client_handlers(asked: list[str]) -> ClientHandlers:
    async def roots(params: JSONObject) -> JSONObject:
        asked.append("roots/list")
        return {"roots": [{"uri": "file:///home/alice/secret-project"}]}

    async def sample(params: JSONObject) -> JSONObject:
        asked.append("sampling/createMessage")
        return {"role": "assistant", "content": {"type": "text", "text": "ok"}, "model": "m"}

    return ClientHandlers(sampling=sample, roots=roots)


@pytest.mark.parametrize("era", [Era.LEGACY, Era.MODERN])
async def test_az1_tc6_a_denied_roots_request_never_reaches_the_client(era: Era) -> None:
    """Red-team I1: a deny on ``methods: [roots/list]`` loaded and ``policy test`` said
    deny, yet every upstream still got the client's roots. Now the client is never asked;
    sampling, allowed by the target rule without ``methods``, still is; a target allowed
    only for ``tools/call`` gets no sampling either. Each decision is in the audit record."""
    rules, sink, refusals, asked = policy(POLICY), MemorySink(), [], []
    stages = [AuditStage(sink), AuthorizeStage(lambda: rules)]
    app = asking_app(refusals)
    async with guarded(app, stages, principal("alice", "dev"), era, client_handlers(asked)) as c:
        results = {}
        for tool in ("up__roots", "up__sample", "strict__sample"):
            try:
                out = await c.call_tool(tool, {})
                results[tool] = out["content"][0]["text"]
            except PeerError as exc:
                results[tool] = f"error {exc.peer_code}"
    assert asked == ["sampling/createMessage"]  # roots and the strict target's sampling: never
    assert results["up__sample"] == "answered"
    if era is Era.LEGACY:  # the upstream is refused its request and goes on
        assert results["up__roots"] == results["strict__sample"] == "refused"
    else:  # a 2026-07-28 call whose upstream asks what is denied is refused itself
        assert results["up__roots"] == results["strict__sample"] == "error -32003"
    relayed: dict[str, list[object]] = {}
    for record in sink.records:  # a 2026-07-28 call asks in one round, is retried in another
        if record.method == "tools/call" and record.target is not None:
            relayed.setdefault(record.target, []).extend(record.detail.get("relayed", []))
    assert relayed["up__roots"] == [
        {"method": "roots/list", "decision": "deny", "rule_id": "no-roots"}
    ]
    assert relayed["up__sample"] == [
        {"method": "sampling/createMessage", "decision": "allow", "rule_id": "dev-tools"}
    ]
    assert relayed["strict__sample"] == [
        {"method": "sampling/createMessage", "decision": "deny", "rule_id": "default-deny"}
    ]


def test_the_gateways_own_input_requests_are_not_decided_here() -> None:
    """``approval: human`` asks the client under an ``io.bastion/`` key: not the upstream's."""
    asked: list[str] = []

    def refuse(method: str) -> object:
        asked.append(method)
        raise AssertionError("decided")

    result = {"inputRequests": {"io.bastion/approval": {"method": "elicitation/create"}}}
    check_input_requests(result, refuse)  # type: ignore[arg-type]
    assert asked == []
    held = {slot for cls in PolicedCall.__mro__ for slot in getattr(cls, "__slots__", ())}
    assert held == {"_decide", "_inner", "_peer", "message", "close_stream"}  # no exchange
