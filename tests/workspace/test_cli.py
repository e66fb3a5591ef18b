"""``bastion workspace`` as a real process: over stdio (both eras) and over Streamable HTTP,
two clients of one HTTP server hearing each other's changes."""

from __future__ import annotations

import subprocess
from pathlib import Path

import anyio
import pytest

from bastion.client import ClientHandlers, ClientSession
from bastion.protocol.versions import Era
from bastion.transport.http_client import HttpClientStream
from bastion.transport.stdio import StdioChild
from tests.support import BASTION, free_port, stop_process, wait_for_port
from tests.workspace.support import Inbox, ok, refused

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


@pytest.mark.parametrize("era", [Era.LEGACY, Era.MODERN])
async def test_workspace_over_stdio(tmp_path: Path, era: Era) -> None:
    argv = [str(BASTION), "workspace", "--root", str(tmp_path / "root"), "--stdio"]
    with anyio.fail_after(30):
        async with StdioChild(argv) as child, ClientSession(child, era=era) as s:
            info = await s.connect()
            assert info.server_info["name"] == "bastion-workspace"
            await ok(s, "create_workspace", name="proj")
            await ok(s, "write_file", workspace="proj", path="src/app.py", content="x = 1\n")
            read = await ok(s, "read_file", workspace="proj", path="src/app.py")
            assert read["uri"] == "workspace://proj/src/app.py"
            await refused(s, "read_file", workspace="proj", path="../../etc/passwd")
    assert (tmp_path / "root" / "proj" / "src" / "app.py").read_text() == "x = 1\n"


async def test_workspace_over_http_two_agents(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [str(BASTION), "workspace", "--root", str(tmp_path / "root"), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}/mcp"
    heard = Inbox()
    try:
        wait_for_port(port)
        with anyio.fail_after(30):
            async with (
                HttpClientStream(url) as stream_b,
                ClientSession(
                    stream_b, era=Era.LEGACY, handlers=ClientHandlers(on_notification=heard)
                ) as b,
                HttpClientStream(url) as stream_a,
                ClientSession(stream_a, era=Era.MODERN) as a,
            ):
                await b.connect()
                await a.connect()
                await ok(a, "create_workspace", name="proj")
                await ok(b, "join_workspace", workspace="proj", name="bob")
                alice = await ok(a, "join_workspace", workspace="proj", name="alice")
                await b.request("resources/subscribe", {"uri": "workspace://proj/notes.md"})
                await ok(
                    a,
                    "write_file",
                    workspace="proj",
                    path="notes.md",
                    content="hi",
                    member_token=alice["member_token"],
                )
                await ok(
                    a,
                    "broadcast",
                    workspace="proj",
                    message="wrote notes",
                    member_token=alice["member_token"],
                )
                updates = await heard.wait_for("notifications/resources/updated")
                assert updates[0]["uri"] == "workspace://proj/notes.md"
                messages = await heard.wait_for("notifications/message")
                assert messages[0]["data"]["message"] == "wrote notes"
                log = await ok(b, "list_changes", workspace="proj")
                assert log["changes"][0]["agent"]["name"] == "alice"
    finally:
        stop_process(proc)
