"""``bastion workspace --disk-quota`` as a real process: stopped by SIGTERM (what systemd
and ``kill`` send), idle or with a command running, it unmounts its workspaces and frees
their loop devices as it does when its stdin closes. Needs root (loop mounts)."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from bastion.client import ClientSession
from bastion.transport.stdio import StdioChild
from tests.support import BASTION
from tests.workspace.support import (
    loops_under,
    mounts_under,
    ok,
    quota_root,
)

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

SLEEPER = "open('started', 'w').close(); import time; time.sleep(60)"


@pytest.fixture
def base() -> Iterator[Path]:
    yield from quota_root()


async def _run_sleeper(session: ClientSession) -> None:
    # The server goes away mid-call, as it should: how the call ends is not the point.
    with contextlib.suppress(Exception):
        argv = ["python3", "-c", SLEEPER]
        await session.call_tool("run_command", {"workspace": "demo", "argv": argv})


@pytest.mark.parametrize("busy", [False, True], ids=["idle", "running-a-command"])
async def test_sigterm_unmounts_the_quota_workspaces(base: Path, busy: bool) -> None:
    root = base / "root"
    argv = [str(BASTION), "workspace", "--root", str(root), "--stdio", "--disk-quota", "16M"]
    with anyio.fail_after(60):
        async with StdioChild(argv) as child, ClientSession(child) as session:
            await session.connect()
            await ok(session, "create_workspace", name="demo")
            assert os.path.ismount(root / "demo")
            async with anyio.create_task_group() as tg:
                if busy:
                    tg.start_soon(_run_sleeper, session)
                    while not (root / "demo" / "started").exists():
                        await anyio.sleep(0.05)
                assert child.pid is not None
                os.kill(child.pid, signal.SIGTERM)
                while child.returncode is None:
                    await anyio.sleep(0.05)
                tg.cancel_scope.cancel()
    assert mounts_under(base) == []
    assert loops_under(base) == []
    assert child.returncode == 0
