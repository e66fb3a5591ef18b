"""The rate-limit, validate and sanitise stages in front of a real server app (DS-3, IN-3,
IN-4, TC-4), over the in-memory transport."""

from __future__ import annotations

from pathlib import Path

import pytest

from bastion.errors import PeerError
from bastion.guard.sanitise import Sanitiser
from bastion.guard.schemas import SchemaValidator
from bastion.guard.uris import UriPolicy
from bastion.limits import ConcurrencyLimiter, LimitSettings, RateLimiter, RateSpec
from bastion.pipeline.ratelimit import PrincipalRateStage, RateLimitStage
from bastion.pipeline.sanitise import OUTPUT_MISMATCH, SanitiseStage
from bastion.pipeline.tool_schemas import ToolSchemas
from bastion.pipeline.validate import ValidateStage
from bastion.protocol import types as t
from bastion.protocol.versions import Era
from bastion.server.context import ToolContext
from bastion.server.registry import ServerApp
from tests.pipeline.support import guarded, principal, raw_guarded
from tests.server.raw import INITIALIZE

pytestmark = pytest.mark.anyio

AWS_KEY = "AKIAIOSFODNN7EXAMPLE"


def app(calls: list[str]) -> ServerApp:
    server = ServerApp("upstream", "1.0")

    async def add(ctx: ToolContext, args: dict[str, object]) -> t.CallToolResult:
        calls.append("add")
        return t.CallToolResult(content=[t.TextContent(text=str(args))])

    async def leak(ctx: ToolContext, args: dict[str, object]) -> t.CallToolResult:
        calls.append("leak")
        text = f"key={AWS_KEY} and a hidden\u200bspace"
        return t.CallToolResult(content=[t.TextContent(text=text)])

    async def shape(ctx: ToolContext, args: dict[str, object]) -> dict[str, object]:
        calls.append("shape")
        return {"content": [], "structuredContent": {"count": args.get("as")}}

    schema = {
        "type": "object",
        "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
        "required": ["a", "b"],
    }
    server.add_tool(t.Tool(name="add", inputSchema=schema), add)
    server.add_tool(t.Tool(name="leak", inputSchema={"type": "object"}), leak)
    out = {"type": "object", "properties": {"count": {"type": "integer"}}, "required": ["count"]}
    server.add_tool(t.Tool(name="shape", inputSchema={"type": "object"}, outputSchema=out), shape)

    async def read(ctx: ToolContext, uri: str, vars: dict[str, str]) -> list[dict[str, object]]:
        return [{"uri": uri, "text": "ok"}]

    server.add_template(t.ResourceTemplate(name="files", uriTemplate="file:///{+path}"), read)
    return server


@pytest.mark.parametrize("era", [Era.LEGACY, Era.MODERN])
async def test_ds3_over_the_rate_a_call_is_refused_with_retry_after(era: Era) -> None:
    """DS-3: the sixth call in a burst of five is refused -32005 with retryAfter, and
    another principal is not throttled by it."""
    calls: list[str] = []
    limits = LimitSettings(per_principal=RateSpec(rate=5, per="minute", burst=5))
    rates = RateLimiter(limits)
    stages = [PrincipalRateStage(rates), RateLimitStage(rates, ConcurrencyLimiter(limits))]
    server = app(calls)
    async with guarded(server, stages, principal("alice"), era) as client:
        for _ in range(4):  # connect() used one token (discover or initialize)
            await client.call_tool("leak", {})
        with pytest.raises(PeerError) as refused:
            await client.call_tool("leak", {})
    assert refused.value.peer_code == -32005
    assert refused.value.peer_data["retryAfter"] >= 1
    assert calls == ["leak"] * 4
    async with guarded(server, stages, principal("bob"), era) as client:
        await client.call_tool("leak", {})


async def test_in3_arguments_are_checked_against_the_input_schema() -> None:
    """IN-3: wrong types and unknown fields are refused -32602 before the tool runs."""
    calls: list[str] = []
    server = app(calls)
    stage = ValidateStage(server, ToolSchemas(SchemaValidator()), UriPolicy(schemes=None))
    async with guarded(server, [stage], principal("alice"), Era.MODERN) as client:
        assert (await client.call_tool("add", {"a": 1, "b": 2}))["content"]
        for bad in ({"a": "1", "b": 2}, {"a": 1}, {"a": 1, "b": 2, "c": 3}):
            with pytest.raises(PeerError) as refused:
                await client.call_tool("add", bad)
            assert refused.value.peer_code == -32602
            assert "1" not in refused.value.peer_message.replace("$", "")  # no values echoed
    assert calls == ["add"]


async def test_in4_file_uris_outside_the_root_are_refused(tmp_path: Path) -> None:
    """IN-4: a file URI is confined to the configured root; traversal is refused."""
    root = tmp_path / "root"
    root.mkdir()
    (root / "a.txt").write_text("a")
    calls: list[str] = []
    server = app(calls)
    uris = UriPolicy(schemes=("file",), file_roots=(str(root),))
    stage = ValidateStage(server, None, uris)
    async with guarded(server, [stage], principal("alice"), Era.LEGACY) as client:
        ok = await client.read_resource(f"file://{root}/a.txt")
        assert ok["contents"][0]["text"] == "ok"
        for bad in (f"file://{root}/../secret", "file:///etc/passwd", f"file://{root}/%2e%2e/x"):
            with pytest.raises(PeerError) as refused:
                await client.read_resource(bad)
            assert refused.value.peer_code == -32602


@pytest.mark.parametrize("bad", ["file:///etc/shadow", "file://{root}/../secret", "gopher://x/"])
async def test_in4_listen_uris_are_confined_like_subscribe(tmp_path: Path, bad: str) -> None:
    """IN-4: every URI of a 2026-07-28 subscriptions/listen passes the same confinement as
    resources/subscribe; one refused refuses the request, before anything is subscribed."""
    root = tmp_path / "root"
    root.mkdir()
    bad = bad.format(root=root)
    server = app([])
    subscribed: list[str] = []

    async def hook(uri: str, on: bool) -> None:
        subscribed.append(uri)

    server.subscription_hook = hook
    stage = ValidateStage(server, None, UriPolicy(schemes=("file",), file_roots=(str(root),)))
    async with raw_guarded(server, [stage], principal("alice")) as c:
        await c.call("initialize", INITIALIZE, 1)
        await c.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        legacy = await c.call("resources/subscribe", {"uri": bad}, 2)
        notifications = {"resourceSubscriptions": [f"file://{root}/a.txt", bad]}
        modern = await c.modern("subscriptions/listen", {"notifications": notifications}, 3)
    assert legacy["error"]["code"] == -32602
    assert modern["error"] == legacy["error"]
    assert subscribed == []


async def test_tc4_results_are_sanitised_and_output_schemas_enforced() -> None:
    """TC-4: secrets masked and invisible characters stripped from results; IN-3: a
    structuredContent outside the outputSchema becomes an error result."""
    calls: list[str] = []
    server = app(calls)
    stage = SanitiseStage(server, Sanitiser(), ToolSchemas(SchemaValidator()))
    async with guarded(server, [stage], principal("alice"), Era.MODERN) as client:
        leaked = await client.call_tool("leak", {})
        text = leaked["content"][0]["text"]
        assert AWS_KEY not in text and "[REDACTED]" in text
        assert "\u200b" not in text
        good = await client.call_tool("shape", {"as": 3})
        assert good["structuredContent"] == {"count": 3}
        bad = await client.call_tool("shape", {"as": "three"})
    assert bad["isError"] is True
    assert bad["content"][0]["text"] == OUTPUT_MISMATCH
