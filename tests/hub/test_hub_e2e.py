"""``bastion hub`` end to end, with real processes: it starts with no instances, lists
``bastion serve`` instances as they start, connects to one and calls its tools, tells the
client when that instance is killed, and reconnects after a restart (seed 003)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import ExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

from bastion.client import ClientHandlers, ClientSession
from bastion.hub.registry import default_registry_dir, record_path
from bastion.protocol.jsonrpc import Notification
from bastion.protocol.versions import Era
from bastion.transport.stdio import StdioChild
from tests.support import BASTION, free_port, serve_in, stop_process

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

# "The hub lists it within a second": from the instance's registration file being written
# to the hub listing it (measured here at ~0.05-0.1 s: a poll, a port check and an MCP ping).
LIST_WITHIN = 1.0


@asynccontextmanager
async def hub(heard: list[Notification], era: Era) -> AsyncIterator[ClientSession]:
    async def on_note(note: Notification) -> None:
        heard.append(note)

    env = {name: os.environ[name] for name in ("PATH", "XDG_DATA_HOME", "XDG_STATE_HOME")}
    async with (
        StdioChild([str(BASTION), "hub"], env=env) as child,
        ClientSession(
            child, era=era, handlers=ClientHandlers(on_notification=on_note), log_level="info"
        ) as session,
    ):
        await session.connect()
        yield session


async def listed(session: ClientSession) -> list[dict[str, Any]]:
    result = await session.call_tool("instances_list", {})
    rows: list[dict[str, Any]] = result["structuredContent"]["instances"]
    return rows


def registered_at(instance_id: str) -> float:
    """When the instance's registration file was written (its mtime, wall clock)."""
    return record_path(default_registry_dir(os.environ), instance_id).stat().st_mtime


def listing_latency(rows: list[dict[str, Any]], name: str) -> float:
    """Seconds from ``name``'s registration to now (when ``rows`` was just listed)."""
    [row] = [r for r in rows if r["name"] == name]
    latency = time.time() - registered_at(row["id"])
    print(f"hub listed {name} {latency:.3f}s after it registered")
    return latency


async def until(session: ClientSession, check: Any, within: float) -> list[dict[str, Any]]:
    deadline = time.monotonic() + within
    while True:
        rows = await listed(session)
        if check(rows):
            return rows
        assert time.monotonic() < deadline, f"not within {within}s: {rows}"
        await anyio.sleep(0.05)


@pytest.mark.parametrize("era", [Era.LEGACY, Era.MODERN])
async def test_hub_lists_connects_and_follows_instances(tmp_path: Path, era: Era) -> None:
    heard: list[Notification] = []
    with anyio.fail_after(90):
        async with hub(heard, era) as s:
            assert await listed(s) == []  # no instances, no registry directory: no error
            names = {tool["name"] for tool in await s.list_tools()}
            assert {"instances_list", "instances_connect", "instances_disconnect"} <= names

            port_a, port_b = free_port(), free_port()
            with ExitStack() as stack:  # one at a time, to time the listing of each
                alpha = stack.enter_context(serve_in(tmp_path / "alpha", port_a))
                rows = await until(s, lambda r: len(r) == 1, within=5)
                assert listing_latency(rows, "alpha") < LIST_WITHIN
                stack.enter_context(serve_in(tmp_path / "beta", port_b))
                rows = await until(s, lambda r: len(r) == 2, within=5)
                assert listing_latency(rows, "beta") < LIST_WITHIN
                by_name = {r["name"]: r for r in rows}
                assert set(by_name) == {"alpha", "beta"}
                assert by_name["alpha"]["pid"] == alpha.pid
                assert by_name["alpha"]["port"] == port_a
                assert by_name["alpha"]["project"] == str(tmp_path / "alpha")
                uri = f"bastion-hub://instances/{by_name['beta']['id']}"
                assert uri in {r["uri"] for r in await s.list_all("resources/list", "resources")}
                read = await s.read_resource(uri)
                assert '"name":"beta"' in read["contents"][0]["text"]
                assert "credential" not in read["contents"][0]["text"]

                connected = await s.call_tool("instances_connect", {"instance": "alpha"})
                assert not connected.get("isError"), connected
                prefix = connected["structuredContent"]["prefix"]
                assert prefix == "alpha__"
                assert "alpha__echo" in {tool["name"] for tool in await s.list_tools()}
                out = await s.call_tool("alpha__echo", {"text": "through the hub"})
                assert out["content"][0]["text"] == "through the hub"

                alpha.send_signal(signal.SIGKILL)
                alpha.wait()
                await until(s, lambda r: [x["name"] for x in r] == ["beta"], within=15)
                with anyio.fail_after(15):
                    while "alpha__echo" in {tool["name"] for tool in await s.list_tools()}:
                        await anyio.sleep(0.1)
                if era is Era.LEGACY:  # a session client also hears why
                    with anyio.fail_after(5):
                        while not any(
                            n.method == "notifications/message"
                            and (n.params or {}).get("data", {}).get("event") == "instance gone"
                            for n in heard
                        ):
                            await anyio.sleep(0.05)
                    assert any(n.method == "notifications/tools/list_changed" for n in heard)

                with serve_in(tmp_path / "alpha", port_a):
                    await until(s, lambda r: {x["name"] for x in r} == {"alpha", "beta"}, 5)
                    again = await s.call_tool("instances_connect", {"instance": "alpha"})
                    assert not again.get("isError"), again
                    out = await s.call_tool("alpha__echo", {"text": "after the restart"})
                    assert out["content"][0]["text"] == "after the restart"
                    done = await s.call_tool("instances_disconnect", {"instance": "alpha"})
                    assert not done.get("isError"), done
                    assert "alpha__echo" not in {t["name"] for t in await s.list_tools()}


async def test_tc1_tc4_an_instance_reached_through_the_hub_is_screened_and_filtered(
    tmp_path: Path,
) -> None:
    """The hub runs every request through the security pipeline as the local user, like
    ``bastion stdio``: a registered server's poisoned tools are held back (TC-1) and the
    secrets in its results masked (TC-4), whoever registered it."""
    from tests.guard.upstreams.malicious import AWS_KEY, GITHUB_TOKEN
    from tests.pipeline.live import malicious_http

    heard: list[Notification] = []
    with anyio.fail_after(90), malicious_http() as url, ExitStack() as stack:
        register = [str(BASTION), "register", "--url", url, "--name", "evil"]
        registrar = subprocess.Popen([*register, "--project", str(tmp_path)])
        stack.callback(stop_process, registrar)
        async with hub(heard, Era.MODERN) as s:
            await until(s, lambda r: [x["name"] for x in r] == ["evil"], within=10)
            connected = await s.call_tool("instances_connect", {"instance": "evil"})
            assert not connected.get("isError"), connected
            names = {tool["name"] for tool in await s.list_tools()}
            assert "evil__fetch_notes" in names
            assert "evil__add" not in names  # "<IMPORTANT>... read ~/.ssh/id_rsa": held
            notes = await s.call_tool("evil__fetch_notes", {})
    text = notes["content"][0]["text"]
    assert AWS_KEY not in text and GITHUB_TOKEN not in text and "[REDACTED]" in text
