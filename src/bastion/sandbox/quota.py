"""Per-workspace disk quotas: each workspace is its own small filesystem.

An rlimit bounds one file's size, not how many files a command writes; a quota does.
``create_quota_workspace`` makes a sparse ext4 image of the quota's size (with an inode
count in proportion, so a flood of empty files is bounded too), owned by the sandbox user,
and loop-mounts it ``nosuid,nodev`` on the workspace directory. Needs root (losetup and
mount); ``mount_quota_workspace`` remounts an existing image after a restart, and
``mounted_image`` says which image a workspace already mounted is (after a crash).
"""

from __future__ import annotations

import logging
import os
import subprocess
from pathlib import Path
from typing import Final

from bastion.sandbox.errors import SandboxError, SandboxUnavailable
from bastion.sandbox.launcher import SANDBOX_GID, SANDBOX_UID, tool

__all__ = [
    "BYTES_PER_INODE",
    "MIN_QUOTA",
    "create_quota_workspace",
    "is_quota_workspace",
    "mount_quota_workspace",
    "mounted_image",
    "unmount_quota_workspace",
]

logger = logging.getLogger(__name__)

MIN_QUOTA: Final = 8 * 1024 * 1024  # ext4's metadata needs a few MB
BYTES_PER_INODE: Final = 16 * 1024
TOOL_TIMEOUT: Final = 60.0  # mkfs/mount of a sparse image take milliseconds; bound anyway


def _run(*argv: str) -> None:
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=TOOL_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired:
        raise SandboxError(f"{os.path.basename(argv[0])} took over {TOOL_TIMEOUT:g} s") from None
    if done.returncode != 0:
        raise SandboxError(f"{os.path.basename(argv[0])} failed: {done.stderr.strip()[:500]}")


def create_quota_workspace(
    image: Path,
    mountpoint: Path,
    size_bytes: int,
    *,
    uid: int = SANDBOX_UID,
    gid: int = SANDBOX_GID,
) -> Path:
    """A new workspace of at most ``size_bytes`` at ``mountpoint``, backed by ``image``.

    Raises:
        SandboxUnavailable: not root, or mkfs.ext4/mount missing.
        SandboxError: the image exists already, the size is too small, a tool failed.
    """
    if os.geteuid() != 0:
        raise SandboxUnavailable("disk quotas need root (a loop-mounted image per workspace)")
    if size_bytes < MIN_QUOTA:
        raise SandboxError(f"a quota must be at least {MIN_QUOTA} bytes")
    mkfs = tool("mkfs.ext4")
    with open(image, "xb") as handle:  # never reuse someone else's image
        handle.truncate(size_bytes)
    image.chmod(0o600)
    inodes = max(128, size_bytes // BYTES_PER_INODE)
    try:
        _run(
            mkfs,
            "-q",
            "-F",
            "-m",
            "0",
            "-N",
            str(inodes),
            "-O",
            "^has_journal",
            "-E",
            f"root_owner={uid}:{gid}",
            str(image),
        )
        mountpoint.mkdir(parents=True, exist_ok=True)
        mount_quota_workspace(image, mountpoint)
    except BaseException:
        image.unlink(missing_ok=True)
        raise
    lost = mountpoint / "lost+found"
    if lost.is_dir():
        lost.rmdir()
    logger.info("sandbox: workspace %s has a quota of %d bytes", mountpoint, size_bytes)
    return mountpoint


def mount_quota_workspace(image: Path, mountpoint: Path) -> None:
    """Loop-mount an existing workspace image (``nosuid,nodev``)."""
    _run(tool("mount"), "-o", "loop,nosuid,nodev", str(image), str(mountpoint))


def unmount_quota_workspace(mountpoint: Path) -> None:
    _run(tool("umount"), "-d", str(mountpoint))


def is_quota_workspace(path: Path) -> bool:
    return os.path.ismount(path)


def mounted_image(mountpoint: Path) -> Path | None:
    """The image loop-mounted ``nosuid,nodev`` at ``mountpoint``; None when nothing is
    mounted there, or something else (another file system, a mount without those flags)."""
    if not os.path.ismount(mountpoint):
        return None
    device = os.stat(mountpoint).st_dev
    flags = os.statvfs(mountpoint).f_flag
    if flags & (os.ST_NOSUID | os.ST_NODEV) != os.ST_NOSUID | os.ST_NODEV:
        return None
    # The loop device's own record of its file (" (deleted)" once the file is unlinked).
    backing = Path(f"/sys/dev/block/{os.major(device)}:{os.minor(device)}/loop/backing_file")
    try:
        return Path(backing.read_text().rstrip("\n"))
    except OSError:
        return None  # not a loop device
