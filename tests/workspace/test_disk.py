"""Per-workspace disk quotas (DS-2): with ``disk_quota`` every new workspace is its own
loop-mounted filesystem of that size, so a command cannot fill the host's disk by writing
many files each under the file-size rlimit (the red team fallocated 4 GiB in one
``run_command``). Needs root, as ``bastion workspace --disk-quota`` says at start."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from bastion.sandbox import Sandbox
from bastion.sandbox.quota import create_quota_workspace
from bastion.workspace import WorkspaceServer, disk, tools_exec
from bastion.workspace.disk import IMAGES_DIR, parse_size
from tests.support import BASTION
from tests.workspace.support import (
    client,
    loops_under,
    mounts_under,
    ok,
    quota_root,
    refused,
    text,
)

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
    yield from quota_root()


def leftovers(base: Path) -> list[str]:
    """Mounts and loop devices of ours still there."""
    return [*mounts_under(base), *loops_under(base)]


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


def test_a_workspace_left_mounted_by_a_killed_server_is_unmounted_at_the_next_stop(
    base: Path,
) -> None:
    root = base / "root"
    root.mkdir()
    (root / IMAGES_DIR).mkdir(mode=0o700)
    # What a SIGKILLed server leaves: the image still mounted on its workspace.
    create_quota_workspace(root / IMAGES_DIR / "demo.img", root / "demo", QUOTA)
    server = WorkspaceServer(root, disk_quota=QUOTA)
    server.close()
    assert not os.path.ismount(root / "demo")
    assert leftovers(base) == []


async def test_a_foreign_mount_on_a_workspace_is_neither_adopted_nor_used(
    base: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = base / "root"
    server = WorkspaceServer(root, disk_quota=QUOTA)
    server.root.create("demo")
    server.close()
    # Something else (not demo.img) is mounted where demo's image belongs.
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "other", str(root / "demo")], check=True
    )
    server = WorkspaceServer(root, disk_quota=QUOTA)
    try:
        async with client(server) as agent:
            why = await refused(agent, "list_files", workspace="demo")
            assert why.startswith("refused:") and "workspace demo" in why, why
    finally:
        server.close()
    assert mounts_under(base) == [str(root / "demo")]  # left as it was found
    assert "workspace demo" in caplog.text


async def test_a_damaged_image_refuses_its_workspace_and_the_others_work(
    base: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = base / "root"
    server = WorkspaceServer(root, disk_quota=QUOTA)
    for name in ("a", "b", "c"):
        server.root.create(name)
    server.close()
    with open(root / IMAGES_DIR / "b.img", "r+b") as image:  # b's superblock, zeroed
        image.seek(1024)
        image.write(bytes(1024))
    server = WorkspaceServer(root, disk_quota=QUOTA)
    try:
        async with client(server) as agent:
            why = await refused(agent, "write_file", workspace="b", path="x.txt", content="x")
            assert why.startswith("refused:") and "workspace b" in why, why
            assert "/dev/" not in why and IMAGES_DIR not in why  # details: the log's
            assert (await ok(agent, "list_workspaces"))["workspaces"] == [
                {"name": "a", "members": 0},
                {"name": "c", "members": 0},
            ]
            for name in ("a", "c"):
                await ok(agent, "write_file", workspace=name, path="x.txt", content="x")
                assert os.path.ismount(root / name)
    finally:
        server.close()
    assert "workspace b" in caplog.text
    assert leftovers(base) == []


def test_a_start_that_fails_unmounts_what_it_had_mounted(
    base: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = base / "root"
    server = WorkspaceServer(root, disk_quota=QUOTA)
    for name in ("a", "b"):
        server.root.create(name)
    server.close()
    mounted: list[Path] = []
    real_mount = disk.mount_quota_workspace

    def mount_then_interrupted(image: Path, mountpoint: Path) -> None:
        if mounted:
            raise KeyboardInterrupt  # SIGINT while the images are being mounted
        real_mount(image, mountpoint)
        mounted.append(mountpoint)

    monkeypatch.setattr(disk, "mount_quota_workspace", mount_then_interrupted)
    with pytest.raises(KeyboardInterrupt):
        WorkspaceServer(root, disk_quota=QUOTA)
    assert mounted == [root / "a"]
    assert leftovers(base) == []


async def test_a_quota_larger_than_the_free_disk_is_refused_at_creation(base: Path) -> None:
    root = base / "root"
    (root / IMAGES_DIR).mkdir(parents=True, mode=0o700)
    # The images' file system has 32M free: a 64M sparse image would promise what is not there.
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=32m", "disk", str(root / IMAGES_DIR)], check=True
    )
    big = WorkspaceServer(root, disk_quota=64 * MiB)
    try:
        async with client(big) as agent:
            why = await refused(agent, "create_workspace", name="big")
            assert why.startswith("too_large:") and "free disk space" in why, why
            assert await text(agent, "list_workspaces") == "No workspaces."
    finally:
        big.close()
    assert list((root / IMAGES_DIR).iterdir()) == []
    small = WorkspaceServer(root, disk_quota=QUOTA)  # one that fits is made as before
    try:
        small.root.create("small")
        assert os.path.ismount(root / "small")
    finally:
        small.close()
    assert mounts_under(base) == [str(root / IMAGES_DIR)]


def test_a_server_whose_start_fails_after_the_mounts_unmounts_them(
    base: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = base / "root"
    server = WorkspaceServer(root, disk_quota=QUOTA)
    server.root.create("a")
    server.close()

    def broken_runner(*_args: object, **_kwargs: object) -> None:
        raise OSError("the runner could not start")

    monkeypatch.setattr(tools_exec, "Runner", broken_runner)
    with pytest.raises(OSError, match="runner"):
        WorkspaceServer(root, disk_quota=QUOTA)
    assert leftovers(base) == []
