"""Seed 001's ground-truth scenarios, end to end: ``bastion serve`` mounts ``bastion
workspace --stdio`` as the upstream ``workspace``, and two real MCP clients over Streamable
HTTP work in one workspace through it.

Agent A builds a small Python project, runs its tests (they fail), fixes the code with
``edit_file`` and runs them again (they pass); agent B, in the same workspace, hears the
change to the file it subscribed to and A's broadcast; runaway commands are stopped by
``cancel_execution`` and by the MCP cancel, and no process of theirs is left on the host.
Through the gateway every agent shares one upstream session, so identity is the
``member_token`` each got from ``join_workspace``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import uuid
from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import pytest

from bastion.catalog.names import uri_prefix
from bastion.client import ClientHandlers, ClientSession
from bastion.protocol.versions import Era
from bastion.transport.http_client import HttpClientStream
from tests.support import BASTION, gateway_http_server
from tests.workspace.support import Inbox, make_root, ok
from tests.workspace.test_exec import host_pids_with

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

PREFIX = uri_prefix("workspace", False)  # the gateway's scheme prefix for this upstream
CALC_BUGGY = "def add(a, b):\n    return a - b\n"
TEST_CALC = (
    "import unittest\n\nfrom calc import add\n\n\n"
    "class AddTest(unittest.TestCase):\n"
    "    def test_adds(self):\n"
    "        self.assertEqual(add(2, 3), 5)\n"
)


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    assert shutil.which("bwrap"), "bwrap is missing: run scripts/bootstrap"
    base = make_root()
    servers = {
        "workspace": {
            "command": str(BASTION),
            "args": ["workspace", "--root", str(base / "root"), "--stdio"],
        }
    }
    cfg = base / "bastion.yaml"
    cfg.write_text(json.dumps({"servers": servers}))
    try:
        with gateway_http_server(cfg) as gateway:
            status = httpx.get(gateway.removesuffix("/mcp") + "/readyz", timeout=5).json()
            yield gateway
        for upstream in status["upstreams"]:
            with contextlib.suppress(ProcessLookupError, TypeError):
                os.kill(upstream["pid"], signal.SIGKILL)
    finally:
        shutil.rmtree(base, ignore_errors=True)


async def call(s: ClientSession, tool: str, **args: Any) -> dict[str, Any]:
    return await ok(s, f"workspace__{tool}", **args)


async def test_fix_failing_tests_while_a_second_agent_watches(url: str) -> None:
    heard = Inbox()
    with anyio.fail_after(90):
        async with (
            HttpClientStream(url) as stream_a,
            ClientSession(stream_a, era=Era.MODERN) as a,
            HttpClientStream(url) as stream_b,
            ClientSession(
                stream_b, era=Era.LEGACY, handlers=ClientHandlers(on_notification=heard)
            ) as b,
        ):
            await a.connect()
            await b.connect()
            await call(a, "create_workspace", name="calc")
            alice = (await call(a, "join_workspace", workspace="calc", name="alice"))[
                "member_token"
            ]
            bob = (await call(b, "join_workspace", workspace="calc", name="bob"))["member_token"]
            calc_uri = f"{PREFIX}workspace://calc/calc.py"
            messages_uri = f"{PREFIX}workspace-meta://calc/messages"
            await b.request("resources/subscribe", {"uri": calc_uri})
            await b.request("resources/subscribe", {"uri": messages_uri})

            for path, content in (("calc.py", CALC_BUGGY), ("test_calc.py", TEST_CALC)):
                await call(
                    a,
                    "write_file",
                    workspace="calc",
                    path=path,
                    content=content,
                    member_token=alice,
                )
            unittest = ["python3", "-m", "unittest", "-v"]
            failing = await call(
                a, "run_command", workspace="calc", argv=unittest, member_token=alice
            )
            assert failing["exit_code"] == 1
            assert "FAILED (failures=1)" in failing["stderr"]
            assert "AssertionError: -1 != 5" in failing["stderr"]

            before = len(heard.of("notifications/resources/updated"))
            await call(
                a,
                "edit_file",
                workspace="calc",
                path="calc.py",
                old_text="a - b",
                new_text="a + b",
                member_token=alice,
            )
            updates = await heard.wait_for("notifications/resources/updated", before + 1)
            assert calc_uri in [u["uri"] for u in updates]
            passing = await call(
                a, "run_command", workspace="calc", argv=unittest, member_token=alice
            )
            assert passing["exit_code"] == 0 and passing["limit"] == "none"
            assert "Ran 1 test" in passing["stderr"] and "OK" in passing["stderr"]

            before = len(
                [u for u in heard.of("notifications/resources/updated") if u["uri"] == messages_uri]
            )
            await call(
                a, "broadcast", workspace="calc", message="calc tests pass now", member_token=alice
            )
            with anyio.fail_after(10):
                while (
                    len(
                        [
                            u
                            for u in heard.of("notifications/resources/updated")
                            if u["uri"] == messages_uri
                        ]
                    )
                    <= before
                ):
                    await anyio.sleep(0.05)
            read = await b.read_resource(messages_uri)
            board = json.loads(read["contents"][0]["text"])
            assert "calc tests pass now" in json.dumps(board) and "alice" in json.dumps(board)

            # B sees A's file as A left it, and who did what.
            source = await b.read_resource(calc_uri)
            assert "return a + b" in source["contents"][0]["text"]
            log = await call(b, "list_changes", workspace="calc")
            ops = [(c["agent"]["name"], c["op"]) for c in log["changes"]]
            assert ("alice", "edit") in ops and ops.count(("alice", "run")) == 2
            assert bob  # joined; B's identity is used below


async def test_runaway_commands_are_cancelled_and_leave_nothing(url: str) -> None:
    spin = "print('spinning', flush=True)\nwhile True: pass\n"
    logs = Inbox()
    with anyio.fail_after(90):
        async with (
            HttpClientStream(url) as stream_a,
            ClientSession(
                stream_a,
                era=Era.MODERN,
                handlers=ClientHandlers(on_notification=logs),
                log_level="info",
            ) as a,
            HttpClientStream(url) as stream_b,
            ClientSession(stream_b, era=Era.LEGACY) as b,
        ):
            await a.connect()
            await b.connect()
            await call(a, "create_workspace", name="runaway")
            alice = (await call(a, "join_workspace", workspace="runaway", name="alice"))[
                "member_token"
            ]
            bob = (await call(b, "join_workspace", workspace="runaway", name="bob"))["member_token"]

            # 1. cancel_execution by another agent.
            marker = f"runaway-{uuid.uuid4().hex}"
            results: list[dict[str, Any]] = []

            async def run_spinner() -> None:
                argv = ["python3", "-c", spin, marker]
                results.append(
                    await call(a, "run_command", workspace="runaway", argv=argv, member_token=alice)
                )

            async with anyio.create_task_group() as tg:
                tg.start_soon(run_spinner)
                with anyio.fail_after(20):  # the output streams to A while the command runs
                    while not any(
                        "spinning" in str(n.get("data")) for n in logs.of("notifications/message")
                    ):
                        await anyio.sleep(0.05)
                assert host_pids_with(marker), "the command is not running on the host"
                listed = await call(b, "list_executions", workspace="runaway")
                [running] = listed["running"]
                assert running["agent"]["name"] == "alice" and running["argv"][-1] == marker
                members = await call(b, "list_members", workspace="runaway")
                by_name = {m["name"]: m for m in members["members"]}
                assert by_name["alice"]["running"][0]["execution_id"] == running["execution_id"]
                await call(
                    b,
                    "cancel_execution",
                    workspace="runaway",
                    execution_id=running["execution_id"],
                    member_token=bob,
                )
            assert results[0]["limit"] == "cancelled"
            assert host_pids_with(marker) == []

            # 2. The MCP cancel: A gives up on the request (over 2026-07-28, closing it).
            marker = f"runaway-{uuid.uuid4().hex}"
            sleeper = ["python3", "-c", "import time; time.sleep(600)", marker]
            async with anyio.create_task_group() as tg:

                async def run_sleeper() -> None:
                    await call(
                        a, "run_command", workspace="runaway", argv=sleeper, member_token=alice
                    )

                tg.start_soon(run_sleeper)
                with anyio.fail_after(20):
                    while not host_pids_with(marker):
                        await anyio.sleep(0.05)
                tg.cancel_scope.cancel()
            with anyio.fail_after(20):
                while host_pids_with(marker):
                    await anyio.sleep(0.05)
            with anyio.fail_after(10):
                while (await call(b, "list_executions", workspace="runaway"))["running"]:
                    await anyio.sleep(0.05)
            ended = await call(b, "list_executions", workspace="runaway")
            assert [e["state"] for e in ended["ended"]] == ["cancelled", "cancelled"]
