"""The launch chain's process limit, run for real: every sandbox runs as one uid, so a
per-uid RLIMIT_NPROC would let one command at its limit stop every other sandbox from
starting. SECURITY.md: DS-2, DS-3 (one tenant's load does not deny the others).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from bastion.sandbox import CgroupSupport, ExecSpec, Limits, Profile, Sandbox
from tests.sandbox.conftest import make_workspace

pytestmark = pytest.mark.anyio

HELD = 120  # processes sandbox A holds: well over B's limit, under A's
HOLDER = f"""
import os, time
for _ in range({HELD}):
    if os.fork() == 0:
        time.sleep(30)
        os._exit(0)
print("held", flush=True)
time.sleep(30)
"""
FORK_BOMB = """
import os, time
made = 0
while True:
    try:
        pid = os.fork()
    except OSError:
        break
    if pid == 0:
        time.sleep(30)
        os._exit(0)
    made += 1
print(made)
"""
BIG = Profile(name="big", limits=Limits(wall_seconds=20, processes=256))
SMALL = Profile(name="small", limits=Limits(wall_seconds=20, processes=32))


@pytest.fixture
def other() -> Iterator[Path]:
    """A second workspace, removed after the test."""
    path = make_workspace()
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


async def test_a_sandbox_holding_many_processes_does_not_stop_another(
    workspace: Path, other: Path
) -> None:
    with Sandbox() as sandbox:
        assert sandbox.cgroups.version in (1, 2)  # this host has a pids controller
        holder = ExecSpec(workspace=workspace, argv=("python3", "-c", HOLDER), profile=BIG)
        async with sandbox.start(holder) as a:
            with anyio.fail_after(15):
                async for chunk in a.chunks():
                    if b"held" in chunk.data:
                        break
            b = await sandbox.run(
                ExecSpec(workspace=other, argv=("sh", "-c", "/bin/true && echo ok"), profile=SMALL)
            )
            bomb = await sandbox.run(
                ExecSpec(workspace=other, argv=("python3", "-c", FORK_BOMB), profile=SMALL)
            )
            a.cancel()
    assert (b.exit_code, b.stdout) == (0, b"ok\n"), b.stderr
    assert "cgroup-v1-pids" in b.enforced or "cgroup-v2-pids" in b.enforced
    assert 0 < int(bomb.stdout) < 32, bomb.stderr  # B's own limit still holds


async def test_without_a_pids_cgroup_the_rlimit_still_stops_a_fork_bomb(workspace: Path) -> None:
    with Sandbox(cgroups=CgroupSupport(version=0)) as sandbox:
        bomb = await sandbox.run(
            ExecSpec(workspace=workspace, argv=("python3", "-c", FORK_BOMB), profile=SMALL)
        )
    assert not [e for e in bomb.enforced if e.startswith("cgroup")]
    assert bomb.exit_code == 0, bomb.stderr
    assert 0 < int(bomb.stdout) < 32
