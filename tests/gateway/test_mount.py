"""Upstreams mounted and unmounted while the gateway runs (what the hub does with the
instances it connects to), next to tools the gateway offers itself; clients are told."""

from __future__ import annotations

import secrets
from typing import Any

import anyio
import anyio.abc
import pytest

from bastion._types import ConnectChecks
from bastion.client import ClientHandlers
from bastion.config import Config, ServerConfig
from bastion.errors import PeerError
from bastion.gateway import Gateway
from bastion.protocol import types as t
from bastion.protocol.jsonrpc import Notification
from bastion.protocol.request_state import RequestStateSealer
from bastion.protocol.versions import Era
from bastion.server.context import ToolContext
from tests.memory import connected
from tests.support import fixture_http_server

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


async def _hello(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    return {"content": [{"type": "text", "text": "hello from the gateway"}]}


HELLO = t.Tool(name="hello", inputSchema={"type": "object"})


async def test_mount_then_unmount_an_http_upstream() -> None:
    heard: list[Notification] = []
    changed = anyio.Event()

    async def on_note(note: Notification) -> None:
        heard.append(note)
        if note.method == "notifications/tools/list_changed":
            changed.set()

    gateway = Gateway(Config(), {}, sealer=RequestStateSealer([secrets.token_bytes(32)]))
    gateway.add_own_tool(HELLO, _hello)
    with fixture_http_server() as url:
        async with anyio.create_task_group() as tg:
            tg.start_soon(gateway.run)
            await anyio.sleep(0)
            handlers = ClientHandlers(on_notification=on_note)
            async with connected(
                gateway.app, Era.LEGACY, handlers, sealer=gateway.sealer, log_level="info"
            ) as s:
                assert [tool["name"] for tool in await s.list_tools()] == ["hello"]

                await gateway.mount("fx", ServerConfig(url=url))
                with anyio.fail_after(10):
                    await changed.wait()
                names = {tool["name"] for tool in await s.list_tools()}
                assert {"hello", "fx__echo"} <= names
                out = await s.call_tool("fx__echo", {"text": "through a mounted upstream"})
                assert out["content"][0]["text"] == "through a mounted upstream"
                mine = await s.call_tool("hello", {})
                assert mine["content"][0]["text"] == "hello from the gateway"
                with pytest.raises(ValueError, match="already mounted"):
                    await gateway.mount("fx", ServerConfig(url=url))

                await gateway.app.log("warning", {"instance": "fx", "state": "gone"}, "hub")
                changed = anyio.Event()
                await gateway.unmount("fx")
                with anyio.fail_after(10):
                    await changed.wait()
                assert [tool["name"] for tool in await s.list_tools()] == ["hello"]
                with pytest.raises(PeerError):
                    await s.call_tool("fx__echo", {"text": "gone"})
                assert not gateway.mounted("fx")
                assert gateway.status() == []
            tg.cancel_scope.cancel()
    logs = [n.params for n in heard if n.method == "notifications/message"]
    gone = {"instance": "fx", "state": "gone"}
    assert {"level": "warning", "logger": "hub", "data": gone} in logs


async def test_own_tools_are_never_shadowed_by_an_upstream() -> None:
    gateway = Gateway(Config(), {}, sealer=RequestStateSealer([secrets.token_bytes(32)]))
    gateway.add_own_tool(t.Tool(name="fx__echo", inputSchema={"type": "object"}), _hello)
    with fixture_http_server() as url:
        async with anyio.create_task_group() as tg:
            tg.start_soon(gateway.run)
            await anyio.sleep(0)
            await gateway.mount("fx", ServerConfig(url=url))
            with anyio.fail_after(10):
                while not gateway.ready():
                    await anyio.sleep(0.02)
            async with connected(gateway.app, Era.MODERN, sealer=gateway.sealer) as s:
                out = await s.call_tool("fx__echo", {"text": "x"})
                assert out["content"][0]["text"] == "hello from the gateway"
                assert "fx__test_simple_text" in {tool["name"] for tool in await s.list_tools()}
            tg.cancel_scope.cancel()


async def test_up1_a_mount_whose_connect_check_says_no_connects_nowhere() -> None:
    """UP-1: the check a mount passes (the hub's: is the port's listener ours?) is asked
    before the replica's first connection and again when it restarts; while it says no,
    nothing reaches the port and the upstream is not ready."""
    asked = 0
    connections = 0

    async def never() -> bool:
        nonlocal asked
        asked += 1
        return False

    async def count(stream: anyio.abc.SocketStream) -> None:
        nonlocal connections
        connections += 1
        await stream.aclose()

    gateway = Gateway(Config(), {}, sealer=RequestStateSealer([secrets.token_bytes(32)]))
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    url = f"http://127.0.0.1:{listener.extra(anyio.abc.SocketAttribute.local_port)}/mcp"
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, count)
        tg.start_soon(gateway.run)
        await anyio.sleep(0)
        await gateway.mount("fx", ServerConfig(url=url), checks=ConnectChecks(before=never))
        with anyio.fail_after(10):
            while asked < 2:  # the first start, then the restart after it failed
                await anyio.sleep(0.02)
        assert not await gateway.wait_ready("fx", 0)
        tg.cancel_scope.cancel()
    assert connections == 0
