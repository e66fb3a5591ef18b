"""Per-workspace disk quotas (DS-2): with ``disk_quota`` every new workspace is its own
loop-mounted filesystem of that size, so a command cannot fill the host's disk by writing
many files each under the file-size rlimit (the red team fallocated 4 GiB in one
``run_command``). Needs root, as ``bastion workspace --disk-quota`` says at start."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from bastion.sandbox import Sandbox
from bastion.workspace import WorkspaceServer
from bastion.workspace.disk import parse_size
from tests.support import BASTION
from tests.workspace.support import client, ok, refused
from tests.workspace.test_exec import make_root

pytestmark = pytest.mark.anyio

MiB = 1024 * 1024
QUOTA = 16 * MiB
FILL = """
import os
done = 0
for i in range(4):
    with open(f"blob{i}", "wb") as f:
        try:
            os.posix_fallocate(f.fileno(), 0, 8 * 1024 * 1024)
            done += 1
        except OSError as e:
            print("refused:", e.strerror)
            break
print("allocated", done)
"""


def used_bytes(path: Path) -> int:
    total = 0
    for entry in path.iterdir():
        total += entry.lstat().st_blocks * 512
    return total


@pytest.fixture
def base() -> Iterator[Path]:
    assert os.geteuid() == 0, "disk quotas need root (loop mounts)"
    path = make_root()
    yield path
    shutil.rmtree(path, ignore_errors=True)


async def test_a_command_cannot_write_past_the_workspace_quota_DS2(base: Path) -> None:
    with Sandbox("bubblewrap") as box:
        server = WorkspaceServer(base / "root", sandbox=box, disk_quota=QUOTA)
        try:
            server.root.create("demo")
            demo = base / "root" / "demo"
            assert os.path.ismount(demo)
            async with client(server) as agent:
                out = await ok(agent, "run_command", workspace="demo", argv=["python3", "-c", FILL])
                assert "No space left on device" in out["stdout"], out
                assert "allocated 1" in out["stdout"]
                assert used_bytes(demo) <= QUOTA
                why = await refused(
                    agent, "write_file", workspace="demo", path="more.txt", content="x" * MiB
                )
                assert why.startswith("too_large:"), why
        finally:
            server.close()
        assert not os.path.ismount(demo)  # unmounted when the server stops
        # A restart mounts it again: the files are there and the quota still holds.
        again = WorkspaceServer(base / "root", sandbox=box, disk_quota=QUOTA)
        try:
            assert os.path.ismount(demo) and (demo / "blob0").exists()
            assert os.statvfs(demo).f_blocks * os.statvfs(demo).f_frsize <= QUOTA
        finally:
            again.close()


def test_sizes() -> None:
    assert parse_size("16M") == 16 * MiB
    assert parse_size("1G") == 1024 * MiB
    assert parse_size("512m") == 512 * MiB
    assert parse_size(str(QUOTA)) == QUOTA
    assert parse_size("none") is None
    for bad in ("", "-1M", "1T", "lots", "1k"):
        with pytest.raises(ValueError):
            parse_size(bad)


def test_a_bad_quota_is_refused_at_start(tmp_path: Path) -> None:
    argv = ["workspace", "--root", str(tmp_path / "r"), "--stdio", "--disk-quota", "1k"]
    done = subprocess.run(
        [str(BASTION), *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert "--disk-quota: a disk quota must be at least 8M" in done.stderr
