"""Bind sources pinned by descriptor: a symlink anywhere on the way, or a path that is no
longer what was checked, is refused before bwrap gets anything. SECURITY.md: IN-4.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from bastion.sandbox import SandboxError
from bastion.sandbox._pinned import PinnedWorkspace
from bastion.sandbox.launcher import FIRST_PASSED_FD


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "ws" / "data" / "deep").mkdir(parents=True)
    (tmp_path / "ws" / "data" / "file.txt").write_text("mine\n")
    (tmp_path / "elsewhere" / "deep").mkdir(parents=True)
    return tmp_path / "ws"


def _target(fd: int) -> str:
    return os.readlink(f"/proc/self/fd/{fd}")


def test_each_pin_is_a_fresh_descriptor_of_that_path(root: Path) -> None:
    pinned = PinnedWorkspace(root)
    fds = [
        pinned.pin(root, directory=True),
        pinned.pin(root / "data" / "deep", directory=True),
        pinned.pin(root / "data" / "file.txt"),
        pinned.pin(root, directory=True),  # bwrap closes each after its bind
    ]
    handed = pinned.hand_over()
    try:
        assert handed == tuple(fds) and len(set(fds)) == 4
        assert all(fd >= FIRST_PASSED_FD for fd in fds)  # clear of the launcher's 3 and 4
        assert [_target(fd) for fd in fds] == [
            str(root),
            str(root / "data" / "deep"),
            str(root / "data" / "file.txt"),
            str(root),
        ]
        assert stat.S_ISREG(os.fstat(fds[2]).st_mode)
    finally:
        for fd in handed:
            os.close(fd)


def test_what_is_not_handed_over_is_closed(root: Path) -> None:
    before = len(os.listdir("/proc/self/fd"))
    pinned = PinnedWorkspace(root)
    fd = pinned.pin(root / "data" / "deep", directory=True)
    pinned.close()
    with pytest.raises(OSError):
        os.fstat(fd)
    assert len(os.listdir("/proc/self/fd")) == before  # and those opened on the way
    assert pinned.hand_over() == ()


def test_hand_over_closes_only_what_was_opened_on_the_way(root: Path) -> None:
    before = len(os.listdir("/proc/self/fd"))
    pinned = PinnedWorkspace(root)
    fd = pinned.pin(root / "data" / "deep", directory=True)
    assert pinned.hand_over() == (fd,)
    assert len(os.listdir("/proc/self/fd")) == before + 1
    os.close(fd)


@pytest.mark.parametrize("swapped", ["data", "data/deep"])
def test_a_symlink_anywhere_on_the_way_is_refused(root: Path, swapped: str) -> None:
    # The path was checked; then a component became a symlink (to the same layout elsewhere).
    victim = root / swapped
    victim.rename(victim.with_name("moved"))
    victim.symlink_to(root.parent / "elsewhere" / Path(swapped).name)
    pinned = PinnedWorkspace(root)
    with pytest.raises(SandboxError) as refused:
        pinned.pin(root / "data" / "deep", directory=True)
    assert str(refused.value) == "'data/deep' changed while it was checked"
    assert str(root) not in str(refused.value)  # no host path for the caller
    assert pinned.hand_over() == ()


def test_a_symlinked_workspace_is_refused(root: Path) -> None:
    link = root.parent / "link"
    link.symlink_to(root)
    with pytest.raises(SandboxError, match=r"^the workspace changed while it was checked$"):
        PinnedWorkspace(link).pin(link, directory=True)


def test_a_final_symlink_is_refused(root: Path) -> None:
    (root / "data" / "file.txt").unlink()
    (root / "data" / "file.txt").symlink_to("/etc/hostname")
    with pytest.raises(SandboxError, match="changed while it was checked"):
        PinnedWorkspace(root).pin(root / "data" / "file.txt")


def test_a_file_where_a_directory_was_checked_is_refused(root: Path) -> None:
    with pytest.raises(SandboxError, match="changed while it was checked"):
        PinnedWorkspace(root).pin(root / "data" / "file.txt", directory=True)


def test_a_fifo_is_refused(root: Path) -> None:
    os.mkfifo(root / "pipe")
    with pytest.raises(SandboxError, match="changed while it was checked"):
        PinnedWorkspace(root).pin(root / "pipe")


@pytest.mark.parametrize("outside", ["../elsewhere", "data/../../elsewhere"])
def test_a_path_outside_the_workspace_is_refused(root: Path, outside: str) -> None:
    with pytest.raises(SandboxError):
        PinnedWorkspace(root).pin(root / outside, directory=True)
