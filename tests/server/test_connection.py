"""The MCP server side of a connection: era rules, errors on the wire, cancellation, input
rounds and notifications, spoken to with exact JSON-RPC messages."""

from __future__ import annotations

import secrets
from typing import Any

import anyio
import pytest

from bastion.fixture import build_fixture_app
from bastion.protocol import types as t
from bastion.protocol.request_state import RequestStateSealer
from bastion.server.connection import MAX_SUBSCRIPTIONS
from bastion.server.context import ToolContext
from bastion.server.registry import ServerApp
from tests.server.raw import INITIALIZE, MODERN_META, raw_client

pytestmark = pytest.mark.anyio


async def test_legacy_requires_initialize_and_negotiates() -> None:
    async with raw_client(build_fixture_app()) as c:
        early = await c.call("tools/list", {}, 1)
        assert early["error"]["code"] == -32600
        older = await c.call("initialize", {**INITIALIZE, "protocolVersion": "2025-06-18"}, 2)
        assert older["result"]["protocolVersion"] == "2025-06-18"
    async with raw_client(build_fixture_app()) as c:
        unknown = await c.call("initialize", {**INITIALIZE, "protocolVersion": "1999-01-01"}, 1)
        assert unknown["result"]["protocolVersion"] == "2025-11-25"  # ours, never the echo
        assert (await c.call("ping", None, 2))["result"] == {}
        assert (await c.call("logging/setLevel", {"level": "info"}, 3))["result"] == {}
        discover_without_meta = await c.call("server/discover", {}, 4)
        assert discover_without_meta["error"]["code"] == -32602


async def test_modern_validation_order_and_codes() -> None:
    async with raw_client(build_fixture_app()) as c:
        found = await c.modern("server/discover", request_id=1)
        result = found["result"]
        assert result["resultType"] == "complete"
        assert "2026-07-28" in result["supportedVersions"]
        assert result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"]
        assert {"ttlMs", "cacheScope", "capabilities"} <= result.keys()

        no_caps = await c.call(
            "tools/list", {"_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}}, 2
        )
        assert no_caps["error"]["code"] == -32602
        old = await c.modern(
            "tools/list", request_id=3, **{"io.modelcontextprotocol/protocolVersion": "1900-01-01"}
        )
        assert old["error"]["code"] == -32022
        assert old["error"]["data"]["requested"] == "1900-01-01"
        assert set(old["error"]["data"]["supported"]) == set(result["supportedVersions"])
        for i, removed in enumerate(
            ["initialize", "ping", "logging/setLevel", "resources/subscribe", "no/such/method"]
        ):
            answer = await c.modern(removed, {"uri": "x"}, request_id=10 + i)
            assert answer["error"]["code"] == -32601, removed


async def test_wire_errors_for_bad_frames() -> None:
    async with raw_client(build_fixture_app()) as c:
        await c.send(b'{"jsonrpc": "2.0", "id": 1, "method": ')
        assert (await c.recv())["error"]["code"] == -32700
        await c.send(b'[{"jsonrpc": "2.0", "id": 1, "method": "ping"}]')
        batch = await c.recv()
        assert batch["error"]["code"] == -32600 and batch["id"] is None
        await c.send(b'{"jsonrpc": "2.0", "id": true, "method": "ping"}')
        assert (await c.recv())["error"]["code"] == -32600


def _app_with(tool_fn: Any, name: str = "t") -> ServerApp:
    app = ServerApp(name="test", version="1")
    app.add_tool(t.Tool(name=name, description="d", inputSchema={"type": "object"}), tool_fn)
    return app


async def test_internal_errors_never_reach_the_wire() -> None:
    async def leaky(ctx: ToolContext, uri: str, v: dict[str, str]) -> list[dict[str, Any]]:
        raise RuntimeError("secret at /etc/bastion/key")

    async def broken_tool(ctx: ToolContext, args: dict[str, Any]) -> t.CallToolResult:
        raise ValueError("password=hunter2")

    app = _app_with(broken_tool)
    app.add_resource(t.Resource(uri="x://leak", name="leak"), leaky)
    async with raw_client(app) as c:
        read = await c.modern("resources/read", {"uri": "x://leak"})
        assert read["error"]["code"] == -32603
        assert read["error"]["message"] == "Internal error"
        assert "secret" not in str(read) and "errorId" in read["error"]["data"]
        tool = await c.modern("tools/call", {"name": "t", "arguments": {}}, request_id=2)
        assert tool["result"]["isError"] is True
        assert "hunter2" not in str(tool)


async def test_cancellation_stops_the_tool_and_suppresses_the_answer() -> None:
    started, stopped = anyio.Event(), anyio.Event()

    async def slow(ctx: ToolContext, args: dict[str, Any]) -> t.CallToolResult:
        started.set()
        try:
            await anyio.sleep_forever()
        finally:
            stopped.set()
        raise AssertionError("unreachable")

    async with raw_client(_app_with(slow)) as c:
        await c.call("initialize", INITIALIZE, 0)
        await c.send(
            {
                "jsonrpc": "2.0",
                "id": 7,
                "method": "tools/call",
                "params": {"name": "t", "arguments": {}},
            }
        )
        with anyio.fail_after(5):
            await started.wait()
        await c.send(
            {
                "jsonrpc": "2.0",
                "method": "notifications/cancelled",
                "params": {"requestId": 7, "reason": "user"},
            }
        )
        with anyio.fail_after(5):
            await stopped.wait()
        # The next answer on the wire is the ping's: request 7 was never answered.
        assert (await c.call("ping", None, 8))["id"] == 8


async def test_request_state_is_sealed_bound_and_expiring() -> None:
    now = [1000.0]
    sealer = RequestStateSealer([secrets.token_bytes(32)], ttl=60, clock=lambda: now[0])
    name = "test_input_required_result_request_state"
    caps = {"io.modelcontextprotocol/clientCapabilities": {"elicitation": {}}}
    async with raw_client(build_fixture_app(), sealer) as c:
        first = (await c.modern("tools/call", {"name": name, "arguments": {}}, 1, **caps))["result"]
        assert first["resultType"] == "input_required"
        state = first["requestState"]
        answer = {"confirm": {"action": "accept", "content": {"ok": True}}}
        retry = {"name": name, "arguments": {}, "inputResponses": answer}
        ok = await c.modern("tools/call", {**retry, "requestState": state}, 2, **caps)
        assert "state-ok" in ok["result"]["content"][0]["text"]
        tampered = await c.modern("tools/call", {**retry, "requestState": state + "x"}, 3, **caps)
        assert tampered["error"]["code"] == -32602
        other = {
            **retry,
            "name": "test_input_required_result_tampered_state",
            "requestState": state,
        }
        assert (await c.modern("tools/call", other, 4, **caps))["error"]["code"] == -32602
        now[0] += 61
        late = await c.modern("tools/call", {**retry, "requestState": state}, 5, **caps)
        assert late["error"]["code"] == -32602


async def test_request_state_is_bound_to_the_caller_AZ1() -> None:
    """S2 state-handle hijacking: a requestState works only for the caller it was sealed
    for (principal and credential), refused with -32602 exactly like a tampered one."""
    sealer = RequestStateSealer([secrets.token_bytes(32)])
    name = "test_input_required_result_request_state"
    caps = {"io.modelcontextprotocol/clientCapabilities": {"elicitation": {}}}
    answer = {"confirm": {"action": "accept", "content": {"ok": True}}}
    alice = ("alice", "apikey:a1")
    async with raw_client(build_fixture_app(), sealer, caller=alice) as c:
        first = (await c.modern("tools/call", {"name": name, "arguments": {}}, 1, **caps))["result"]
    retry = {"name": name, "arguments": {}, "inputResponses": answer, **first}
    retry = {k: v for k, v in retry.items() if k not in ("resultType", "inputRequests")}
    for stranger in (("bob", "apikey:b1"), ("alice", "apikey:a2"), None):
        async with raw_client(build_fixture_app(), sealer, caller=stranger) as c:
            refused = await c.modern("tools/call", retry, 2, **caps)
        assert refused["error"] == {"code": -32602, "message": "Invalid requestState"}
    async with raw_client(build_fixture_app(), sealer, caller=alice) as c:
        ok = await c.modern("tools/call", retry, 3, **caps)
    assert "state-ok" in ok["result"]["content"][0]["text"]


async def test_reserved_input_keys_come_only_from_the_sealed_state() -> None:
    """A client may not name Bastion's own keys (``io.bastion/...``, such as the parked
    upstream call a retry resumes) in ``inputResponses``, nor override what was sealed in
    ``requestState``: the tool sees the sealed values and the client's fresh answers."""
    from bastion.server.context import InputRequired

    seen: list[dict[str, Any]] = []
    app = ServerApp(name="t", version="1")

    async def asks(ctx: ToolContext, args: dict[str, Any]) -> t.CallToolResult:
        seen.append(dict(ctx.input_responses))
        if "confirm" not in ctx.input_responses:
            question = t.InputRequest(method="elicitation/create", params={"message": "ok?"})
            raise InputRequired({"confirm": question}, {"io.bastion/pending": "real", "n": 1})
        return t.CallToolResult(content=[t.TextContent(text="done")])

    app.add_tool(t.Tool(name="asks", inputSchema={"type": "object"}), asks)
    caps = {"io.modelcontextprotocol/clientCapabilities": {"elicitation": {}}}
    forged = {"io.bastion/pending": "forged", "io.bastion/other": 1, "n": 99}
    async with raw_client(app, RequestStateSealer([secrets.token_bytes(32)])) as c:
        params = {"name": "asks", "arguments": {}, "inputResponses": forged}
        first = (await c.modern("tools/call", params, 1, **caps))["result"]
        state = first["requestState"]
        answer = {**forged, "confirm": {"action": "accept", "content": {}}}
        retry = {"name": "asks", "arguments": {}, "inputResponses": answer, "requestState": state}
        done = await c.modern("tools/call", retry, 2, **caps)
    assert done["result"]["content"][0]["text"] == "done"
    assert seen[0] == {"n": 99}  # no state yet: the reserved keys were dropped
    assert seen[1] == {
        "io.bastion/pending": "real",
        "n": 1,
        "confirm": {"action": "accept", "content": {}},
    }


async def test_modern_logs_only_when_asked() -> None:
    async with raw_client(build_fixture_app()) as c:
        params = {"name": "test_logging_tool", "arguments": {}}
        silent = await c.modern("tools/call", params, request_id=1)
        assert silent["result"]["resultType"] == "complete"
        await c.send(
            {
                "jsonrpc": "2.0",
                "id": 2,
                "method": "tools/call",
                "params": {
                    **params,
                    "_meta": {**MODERN_META, "io.modelcontextprotocol/logLevel": "info"},
                },
            }
        )
        log = await c.recv()
        assert log["method"] == "notifications/message" and log["params"]["level"] == "info"
        assert (await c.recv())["id"] == 2


async def test_missing_capability_is_named() -> None:
    async with raw_client(build_fixture_app()) as c:
        answer = await c.modern("tools/call", {"name": "test_missing_capability", "arguments": {}})
        assert answer["error"]["code"] == -32021
        assert answer["error"]["data"] == {"requiredCapabilities": {"sampling": {}}}


async def test_legacy_list_changed_and_modern_listen() -> None:
    async with raw_client(build_fixture_app()) as c:
        await c.call("initialize", INITIALIZE, 0)
        await c.send(
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "tools/call",
                "params": {"name": "test_trigger_tool_change", "arguments": {}},
            }
        )
        both = [await c.recv(), await c.recv()]
        assert {m.get("method") for m in both} == {"notifications/tools/list_changed", None}
    async with raw_client(build_fixture_app()) as c:
        await c.send(
            {
                "jsonrpc": "2.0",
                "id": "L",
                "method": "subscriptions/listen",
                "params": {"_meta": MODERN_META, "notifications": {"toolsListChanged": True}},
            }
        )
        ack = await c.recv()
        assert ack["method"] == "notifications/subscriptions/acknowledged"
        assert ack["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"] == "L"
        await c.send(
            {
                "jsonrpc": "2.0",
                "id": 2,
                "method": "tools/call",
                "params": {
                    "name": "test_trigger_prompt_change",
                    "arguments": {},
                    "_meta": MODERN_META,
                },
            }
        )
        await c.send(
            {
                "jsonrpc": "2.0",
                "id": 3,
                "method": "tools/call",
                "params": {
                    "name": "test_trigger_tool_change",
                    "arguments": {},
                    "_meta": MODERN_META,
                },
            }
        )
        seen = [await c.recv() for _ in range(3)]
        notes = [m for m in seen if "method" in m]
        # Only the tools change: prompts were not asked for on this stream.
        assert [n["method"] for n in notes] == ["notifications/tools/list_changed"]
        assert notes[0]["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"] == "L"


@pytest.mark.parametrize(
    "uris",
    [
        "note://a",
        [{"uri": "note://a"}],
        None,
        [f"note://{i}" for i in range(MAX_SUBSCRIPTIONS + 1)],
    ],
)
async def test_listen_refuses_a_filter_it_cannot_honour_before_acknowledging(uris: Any) -> None:
    """What the pipeline authorizes is exactly what is followed: resourceSubscriptions must
    be a list of URIs (a string is not read as its characters), and too many are refused
    like resources/subscribe refuses them, not quietly cut short."""
    async with raw_client(build_fixture_app()) as c:
        params = {"notifications": {"resourceSubscriptions": uris}, "_meta": MODERN_META}
        await c.send(
            {"jsonrpc": "2.0", "id": "L", "method": "subscriptions/listen", "params": params}
        )
        first = await c.recv()  # the answer, not an acknowledgement
    assert first["id"] == "L" and first["error"]["code"] == -32602


def _notes_app(withheld: frozenset[str]) -> ServerApp:
    async def read(ctx: ToolContext, uri: str, variables: dict[str, str]) -> list[dict[str, Any]]:
        return [{"uri": uri, "text": f"note {variables['name']}"}]

    app = ServerApp(name="notes", version="1")
    app.add_template(t.ResourceTemplate(uriTemplate="note://{name}", name="notes"), read)
    app.withheld = withheld
    return app


@pytest.mark.parametrize("uri", ["note://lure", "NOTE://lure", "note://%6Cure", "note://l%75re"])
async def test_tc1_a_withheld_uri_is_not_found_through_a_matching_template(uri: str) -> None:
    """Red-team R6: a resource held back is not read, subscribed to or listened to through a
    clean template that matches its URI (in any spelling of it): not found, in both eras."""
    async with raw_client(_notes_app(frozenset({"note://lure"}))) as c:
        modern = await c.modern("resources/read", {"uri": uri})
        assert (modern["error"]["code"], modern["error"]["message"]) == (
            -32602,
            "Resource not found",
        )
        params = {"notifications": {"resourceSubscriptions": [uri]}}
        listened = await c.modern("subscriptions/listen", params, request_id="L")
        assert listened["error"]["code"] == -32602  # the answer, not an acknowledgement
        await c.call("initialize", INITIALIZE, 0)
        legacy = await c.call("resources/read", {"uri": uri})
        assert legacy["error"]["code"] == -32002
        subscribed = await c.call("resources/subscribe", {"uri": uri}, 2)
        assert subscribed["error"]["code"] == -32002
        other = await c.call("resources/read", {"uri": "note://other"}, 3)
        assert other["result"]["contents"][0]["text"] == "note other"


async def test_tc1_a_uri_no_longer_withheld_is_read_through_its_template() -> None:
    async with raw_client(_notes_app(frozenset())) as c:
        read = await c.modern("resources/read", {"uri": "note://lure"})
        assert read["result"]["contents"][0]["text"] == "note lure"
