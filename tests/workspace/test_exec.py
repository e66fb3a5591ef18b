"""run_command, list_executions and cancel_execution against real bubblewrap.

Each test drives the workspace server through an MCP client on the in-memory pair and a
real sandbox; the process checks look at the host's ``/proc``, as an operator would.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

from bastion.client import ClientHandlers, ClientSession
from bastion.protocol.versions import Era
from bastion.sandbox import Sandbox
from bastion.transport.base import serve_stream
from bastion.transport.memory import create_memory_pair
from bastion.workspace import WorkspaceServer
from bastion.workspace.policy import parse_policy
from tests.workspace.support import WAIT, Inbox, make_root, ok, refused, text

pytestmark = pytest.mark.anyio


def host_pids_with(marker: str) -> list[int]:
    """Host processes whose command line contains ``marker`` (what ``pgrep -f`` sees)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cmdline = Path("/proc", entry, "cmdline").read_bytes()
        except OSError:
            continue
        if marker.encode() in cmdline:
            found.append(int(entry))
    return found


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    assert shutil.which("bwrap"), "bwrap is missing: run scripts/bootstrap"
    with Sandbox("bubblewrap") as box:
        yield box


@pytest.fixture
def base() -> Iterator[Path]:
    path = make_root()
    yield path
    shutil.rmtree(path, ignore_errors=True)


def server_with(base: Path, sandbox: Sandbox, policy: str | None = None) -> WorkspaceServer:
    rules = {} if policy is None else {"policy": parse_policy(policy, source="test-policy")}
    server = WorkspaceServer(base / "root", sandbox=sandbox, **rules)  # type: ignore[arg-type]
    server.root.create("demo")
    return server


@pytest.fixture
def server(base: Path, sandbox: Sandbox) -> Iterator[WorkspaceServer]:
    server = server_with(base, sandbox)
    yield server
    server.close()


@asynccontextmanager
async def agent(
    server: WorkspaceServer, inbox: Inbox | None = None
) -> AsyncIterator[ClientSession]:
    """A 2025-11-25 client that asked for info-level log messages."""
    client_end, server_end = create_memory_pair()
    with anyio.fail_after(WAIT * 6):
        async with client_end, server_end, anyio.create_task_group() as tg:
            tg.start_soon(serve_stream, server_end, server.connection())
            handlers = ClientHandlers(on_notification=inbox)
            async with ClientSession(client_end, era=Era.LEGACY, handlers=handlers) as session:
                await session.connect()
                await session.request("logging/setLevel", {"level": "info"})
                yield session
            tg.cancel_scope.cancel()


async def run(session: ClientSession, *argv: str, **extra: Any) -> dict[str, Any]:
    return await ok(session, "run_command", workspace="demo", argv=list(argv), **extra)


async def test_tests_fail_then_pass_after_an_edit(server: WorkspaceServer) -> None:
    async with agent(server) as a:
        await ok(
            a,
            "write_file",
            workspace="demo",
            path="calc.py",
            content="def add(a, b):\n    return a - b\n",
        )
        await ok(
            a,
            "write_file",
            workspace="demo",
            path="test_calc.py",
            content=(
                "import unittest\nfrom calc import add\n\n"
                "class T(unittest.TestCase):\n    def test_add(self):\n"
                "        self.assertEqual(add(2, 3), 5)\n\nunittest.main()\n"
            ),
        )
        failed = await run(a, "python3", "test_calc.py")
        assert failed["exit_code"] == 1 and failed["limit"] == "none"
        assert "FAILED (failures=1)" in failed["stderr"]
        await ok(
            a, "edit_file", workspace="demo", path="calc.py", old_text="a - b", new_text="a + b"
        )
        passed = await run(a, "python3", "test_calc.py")
        assert passed["exit_code"] == 0
        assert "OK" in passed["stderr"]


async def test_the_command_can_write_the_workspace_and_the_server_sees_it(
    server: WorkspaceServer,
) -> None:
    async with agent(server) as a:
        await ok(a, "write_file", workspace="demo", path="data/in.txt", content="hello")
        out = await run(
            a, "python3", "-c", "s=open('data/in.txt').read(); open('data/in.txt','w').write(s+'!')"
        )
        assert out["exit_code"] == 0, out["stderr"]
        assert await text(a, "read_file", workspace="demo", path="data/in.txt") == "hello!"


async def test_output_streams_while_the_command_runs(server: WorkspaceServer) -> None:
    inbox = Inbox()
    code = "import time; print('first', flush=True); time.sleep(3); print('second')"
    async with agent(server, inbox) as a, anyio.create_task_group() as tg:
        results: list[dict[str, Any]] = []
        progress: list[dict[str, Any]] = []

        async def on_progress(params: dict[str, Any]) -> None:
            progress.append(params)

        async def call() -> None:
            result = await a.call_tool(
                "run_command",
                {"workspace": "demo", "argv": ["python3", "-c", code]},
                on_progress=on_progress,
            )
            results.append(result)

        tg.start_soon(call)
        with anyio.fail_after(2.5):  # well before the command's sleep ends
            while not any("first" in str(n.get("data")) for n in inbox.of("notifications/message")):
                await anyio.sleep(0.05)
        assert results == [], "the output arrived only with the result"
    [line] = [n["data"] for n in inbox.of("notifications/message") if "first" in str(n["data"])]
    assert (
        line["stream"] == "stdout"
        and line["execution_id"] == results[0]["structuredContent"]["execution_id"]
    )
    assert results[0]["structuredContent"]["stdout"] == "first\nsecond\n"
    assert progress and "running" in progress[0]["message"], progress


async def test_exit_code_stderr_and_the_timeout_limit(server: WorkspaceServer) -> None:
    async with agent(server) as a:
        out = await run(a, "python3", "-c", "import sys; sys.stderr.write('bad'); sys.exit(3)")
        assert (out["exit_code"], out["stderr"], out["limit"]) == (3, "bad", "none")
        slow = await run(a, "sleep", "20", timeout=1)
        assert slow["limit"] == "timeout"
        assert slow["duration_seconds"] < 10
        too_long = await refused(a, "run_command", workspace="demo", argv=["true"], timeout=9999)
        assert "above the 30 s of profile default" in too_long


async def test_denials_name_the_rule(server: WorkspaceServer) -> None:
    async with agent(server) as a:
        text = await refused(a, "run_command", workspace="demo", argv=["rm", "-rf", "."])
        assert "command not allowed" in text and "no allow rule of role default" in text
        pip = await refused(
            a, "run_command", workspace="demo", argv=["python3", "-m", "pip", "install", "x"]
        )
        assert "denied by rule [python3, -m, pip, **]" in pip
        # Not a substring match: a program merely containing an allowed name is refused.
        assert "not allowed" in await refused(
            a, "run_command", workspace="demo", argv=["./python3"]
        )
        assert "not allowed" in await refused(
            a, "run_command", workspace="demo", argv=["git", "push"]
        )


async def test_cancel_execution_kills_the_whole_tree(server: WorkspaceServer) -> None:
    marker = f"bastion-runaway-{uuid.uuid4().hex}"
    # The command double-forks a setsid daemon; both spin until killed.
    code = (
        "import os, sys, time\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        "        while True: pass\n"
        "    os._exit(0)\n"
        "print('ready', flush=True)\n"
        "while True: time.sleep(1)\n"
    )
    inbox = Inbox()
    async with agent(server, inbox) as a, agent(server) as b:
        joined = await ok(a, "join_workspace", workspace="demo", name="alice")
        token = joined["member_token"]
        results: list[dict[str, Any]] = []

        async def call() -> None:
            results.append(await run(a, "python3", "-c", code, marker, member_token=token))

        async with anyio.create_task_group() as tg:
            tg.start_soon(call)
            await inbox.wait_for("notifications/message", 2)  # started, then "ready"
            with anyio.fail_after(WAIT):
                while len(host_pids_with(marker)) < 2:
                    await anyio.sleep(0.05)
            listed = await ok(b, "list_executions", workspace="demo")
            [running] = listed["running"]
            assert running["agent"]["name"] == "alice" and running["argv"][-1] == marker
            members = await ok(b, "list_members", workspace="demo")
            assert members["members"][0]["running"][0]["execution_id"] == running["execution_id"]
            await ok(b, "cancel_execution", workspace="demo", execution_id=running["execution_id"])
        assert results[0]["limit"] == "cancelled"
        assert host_pids_with(marker) == []
        ended = await ok(b, "list_executions", workspace="demo")
        assert ended["running"] == [] and ended["ended"][0]["state"] == "cancelled"


async def test_mcp_cancel_kills_the_whole_tree(server: WorkspaceServer) -> None:
    marker = f"bastion-runaway-{uuid.uuid4().hex}"
    async with agent(server) as a:
        with anyio.move_on_after(3):
            await run(a, "python3", "-c", "while True: pass", marker)
        with anyio.fail_after(WAIT):
            while host_pids_with(marker):
                await anyio.sleep(0.05)
        listed = await ok(a, "list_executions", workspace="demo")
        assert listed["running"] == [] and listed["ended"][0]["state"] == "cancelled", listed


POLICY = """
rate: {per_minute: 1, burst: 2}
default:
  default_role: coder
  assign: {"reviewer-*": reviewer}
  roles:
    coder:
      allow: [[python3, "**"], ["true"]]
    reviewer:
      allow: [[python3, "**"], [cat, "*"]]
      readonly: [src]
      profiles: [strict]
"""


async def test_readonly_paths_of_a_role(base: Path, sandbox: Sandbox) -> None:
    server = server_with(base, sandbox, POLICY)
    try:
        async with agent(server) as coder, agent(server) as reviewer:
            await ok(coder, "write_file", workspace="demo", path="src/app.py", content="x = 1\n")
            joined = await ok(reviewer, "join_workspace", workspace="demo", name="reviewer-bob")
            token = joined["member_token"]
            why = await refused(
                reviewer,
                "write_file",
                workspace="demo",
                path="src/app.py",
                content="",
                member_token=token,
            )
            assert "read-only for role reviewer" in why
            assert "read-only" in await refused(
                reviewer,
                "delete_file",
                workspace="demo",
                path="src",
                recursive=True,
                member_token=token,
            )
            out = await run(
                reviewer,
                "python3",
                "-c",
                "open('src/app.py','w').write('evil')",
                member_token=token,
            )
            assert out["exit_code"] == 1 and "Read-only file system" in out["stderr"]
            assert out["profile"] == "strict"
            assert (
                await text(reviewer, "read_file", workspace="demo", path="src/app.py") == "x = 1\n"
            )
    finally:
        server.close()


async def test_runs_are_rate_limited_per_agent(base: Path, sandbox: Sandbox) -> None:
    server = server_with(base, sandbox, POLICY)
    try:
        async with agent(server) as a, agent(server) as b:
            ta = (await ok(a, "join_workspace", workspace="demo", name="a"))["member_token"]
            tb = (await ok(b, "join_workspace", workspace="demo", name="b"))["member_token"]
            await run(a, "true", member_token=ta)
            await run(a, "true", member_token=ta)
            text = await refused(a, "run_command", workspace="demo", argv=["true"], member_token=ta)
            assert "rate limit" in text and "try again in" in text
            await run(b, "true", member_token=tb)  # another agent is not throttled (DS-3)
    finally:
        server.close()


async def test_a_sandbox_that_cannot_start_is_a_clear_tool_error(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    # pytest's tmp_path is 0700: the sandbox user cannot reach a workspace below it.
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    server = WorkspaceServer(private / "root", sandbox=sandbox)
    server.root.create("demo")
    try:
        async with agent(server) as a:
            text = await refused(a, "run_command", workspace="demo", argv=["true"])
            assert text.startswith("sandbox: the sandbox could not run the command")
            assert "cannot reach" in text
    finally:
        server.close()


async def test_big_output_is_capped_in_the_result_and_bounded_in_the_stream(
    server: WorkspaceServer,
) -> None:
    inbox = Inbox()
    code = "import sys\nfor _ in range(48): sys.stdout.write('x' * 65536); sys.stdout.flush()"
    async with agent(server, inbox) as a:
        out = await run(a, "python3", "-c", code)
    assert out["exit_code"] == 0 and out["output_bytes"] == 48 * 65536
    assert out["stdout_truncated"] is True and len(out["stdout"]) == 256 * 1024
    lines = [n["data"] for n in inbox.of("notifications/message") if "stream" in n["data"]]
    streamed = sum(len(line["text"]) for line in lines)
    assert 0 < streamed <= 1024 * 1024 + 16 * 1024  # 1 MiB per execution, one flush over
    assert all(len(line["text"]) <= 16 * 1024 for line in lines)
    assert any(line.get("not_streamed_bytes") for line in lines)
