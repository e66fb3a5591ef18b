"""Workspace test support: a server on a temporary root, clients on the in-memory pair,
helpers that return a tool's structured result or its error text, and for the disk-quota
tests (root) the mounts and loop devices below a directory, with their cleanup."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio

from bastion.client import ClientHandlers, ClientSession
from bastion.protocol.jsonrpc import Notification
from bastion.protocol.versions import Era
from bastion.transport.base import serve_stream
from bastion.transport.memory import create_memory_pair
from bastion.workspace import WorkspaceServer
from tests.clock import FakeClock  # noqa: F401 - re-exported for the tests here

WAIT = 10  # seconds; every in-memory exchange finishes far sooner


class Inbox:
    """Notifications one client received, with a way to wait for the next matching one."""

    def __init__(self) -> None:
        self.notes: list[Notification] = []
        self._arrived = anyio.Event()

    async def __call__(self, note: Notification) -> None:
        self.notes.append(note)
        self._arrived.set()

    def of(self, method: str) -> list[dict[str, Any]]:
        return [dict(n.params or {}) for n in self.notes if n.method == method]

    async def wait_for(self, method: str, count: int = 1) -> list[dict[str, Any]]:
        with anyio.fail_after(WAIT):
            while len(self.of(method)) < count:
                self._arrived = anyio.Event()
                await self._arrived.wait()
        return self.of(method)


@asynccontextmanager
async def client(
    server: WorkspaceServer, era: Era | None = Era.LEGACY, inbox: Inbox | None = None
) -> AsyncIterator[ClientSession]:
    client_end, server_end = create_memory_pair()
    handlers = ClientHandlers(on_notification=inbox)
    with anyio.fail_after(WAIT * 3):
        async with client_end, server_end, anyio.create_task_group() as tg:
            tg.start_soon(serve_stream, server_end, server.connection())
            async with ClientSession(client_end, era=era, handlers=handlers) as session:
                await session.connect()
                yield session
            tg.cancel_scope.cancel()


async def ok(session: ClientSession, tool: str, **args: Any) -> dict[str, Any]:
    """The structured result of a tool call that must succeed."""
    result = await session.call_tool(tool, args)
    assert not result.get("isError"), result["content"][0]["text"]
    structured: dict[str, Any] = result["structuredContent"]
    return structured


async def text(session: ClientSession, tool: str, **args: Any) -> str:
    """The text of a tool call that must succeed."""
    result = await session.call_tool(tool, args)
    assert not result.get("isError"), result["content"][0]["text"]
    return str(result["content"][0]["text"])


async def refused(session: ClientSession, tool: str, **args: Any) -> str:
    """The error text of a tool call that must fail with an ``isError`` result."""
    result = await session.call_tool(tool, args)
    assert result.get("isError") is True, result
    assert "structuredContent" not in result
    return str(result["content"][0]["text"])


def mounts_under(path: Path) -> list[str]:
    """The mount points below ``path``, in the order they were mounted."""
    prefix = f"{path}/"
    targets = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
    return [t for t in targets if t.replace("\\040", " ").startswith(prefix)]


def loops_under(path: Path, settle: float = 5.0) -> list[str]:
    """The loop devices whose backing file is below ``path``, once those being freed are
    gone (the kernel releases a detached loop device asynchronously; wait ``settle`` s)."""
    deadline = time.monotonic() + settle
    while True:
        done = subprocess.run(
            ["losetup", "--list", "--noheadings", "--output", "NAME,BACK-FILE"],
            capture_output=True,
            text=True,
            timeout=WAIT,
            check=True,
        )
        rows = [line.split(maxsplit=1) for line in done.stdout.splitlines()]
        found = [row[0] for row in rows if len(row) == 2 and row[1].startswith(f"{path}/")]
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def release_mounts(path: Path) -> None:
    """Unmount whatever a test left mounted below ``path`` and free its loop devices."""
    for target in reversed(mounts_under(path)):
        if subprocess.run(["umount", "-d", target], capture_output=True, check=False).returncode:
            subprocess.run(["umount", "-l", target], capture_output=True, check=False)
    for loop in loops_under(path):
        subprocess.run(["losetup", "-d", loop], capture_output=True, check=False)


def make_root() -> Path:
    """A new directory for a workspace root. Under /tmp, searchable by everyone: the sandbox
    user must reach the workspace."""
    base = Path(tempfile.mkdtemp(prefix="bastion-exec-", dir="/tmp"))
    base.chmod(0o755)
    return base


def quota_root() -> Iterator[Path]:
    """A ``make_root`` for disk-quota tests (root only: loop mounts); what a test left
    mounted under it, failed or not, is released and the directory removed afterwards."""
    assert os.geteuid() == 0, "disk quotas need root (loop mounts)"
    path = make_root()
    yield path
    release_mounts(path)
    shutil.rmtree(path, ignore_errors=True)
