"""Per-workspace disk quotas (``bastion workspace --disk-quota SIZE``).

An rlimit bounds one file, not what a command writes in all (one ``run_command``
fallocated 4 GiB as four files under the 1 GiB file-size limit). With a quota, each new
workspace is its own loop-mounted ext4 image of that size (``bastion.sandbox.quota``), kept
in the root's ``.disk/`` (a name no workspace may have). A new image is refused when the
file system holding ``.disk/`` has less free space than the quota (images are sparse: the
check is against this one image, not the sum of what the others may still grow to).

Images are mounted when their workspace is created and when the server starts, and
unmounted when it stops. At start an image already mounted on its workspace (a server
killed before it could unmount) is adopted; a workspace whose image cannot be mounted, or
with something else mounted on it, is ``refused`` (logged; its callers get a refusal), and
the others serve. A start that fails anyway unmounts what it had mounted. It needs root
(``mount``) and one loop device per workspace; workspaces created without a quota stay
unbounded.
"""

from __future__ import annotations

import logging
import os
import re
import stat
from pathlib import Path
from typing import Final

from bastion.sandbox import SandboxError, SandboxUnavailable
from bastion.sandbox.quota import (
    MIN_QUOTA,
    create_quota_workspace,
    is_quota_workspace,
    mount_quota_workspace,
    mounted_image,
    unmount_quota_workspace,
)
from bastion.workspace.errors import TooLarge

__all__ = ["IMAGES_DIR", "DiskQuota", "parse_size", "quota_unavailable"]

logger = logging.getLogger(__name__)

IMAGES_DIR: Final = ".disk"
_SIZE: Final = re.compile(r"([0-9]+)([kmg]?)i?b?")
_UNITS: Final = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def parse_size(text: str) -> int | None:
    """Bytes of ``16M``, ``1G``, ``512k`` or a plain number; ``none`` is no quota.

    Raises:
        ValueError: anything else, or a size below the quota's minimum.
    """
    if text.strip().lower() == "none":
        return None
    found = _SIZE.fullmatch(text.strip().lower())
    if found is None:
        raise ValueError(f"expected a size such as 512M or 2G, or none; got {text!r}")
    size = int(found.group(1)) * _UNITS[found.group(2)]
    if size < MIN_QUOTA:
        raise ValueError(f"a disk quota must be at least {MIN_QUOTA // 1024**2}M")
    return size


def quota_unavailable() -> str | None:
    """Why quotas cannot work here, or None when they can."""
    if os.geteuid() != 0:
        return "disk quotas need root (a loop-mounted image per workspace)"
    return None


class DiskQuota:
    """Quota images of the workspaces under ``root``, each ``size`` bytes.

    Raises (at start) SandboxUnavailable: a tool is missing; each image's own failure only
    puts its workspace in ``refused``.
    """

    def __init__(self, root: Path, size: int) -> None:
        self.root = root
        self.size = size
        self.images = root / IMAGES_DIR
        self.images.mkdir(mode=0o700, exist_ok=True)
        self._mounted: list[Path] = []
        # Workspaces whose image is not on them: using them would escape the quota.
        self.refused: set[str] = set()
        try:
            for image in sorted(self.images.glob("*.img")):
                self._mount_at_start(image)
        except BaseException:
            self.close()
            raise

    def _mount_at_start(self, image: Path) -> None:
        name = image.stem
        mountpoint = self.root / name
        try:
            if not stat.S_ISDIR(os.lstat(mountpoint).st_mode):
                return
        except FileNotFoundError:
            return
        if is_quota_workspace(mountpoint):
            if mounted_image(mountpoint) != image.resolve():
                self._refuse(name, f"{mountpoint} has a mount other than {image} nosuid,nodev")
                return
            logger.info("workspace %s: its image was still mounted; adopted", name)
        else:
            try:
                mount_quota_workspace(image, mountpoint)
            except SandboxUnavailable:
                raise
            except SandboxError as exc:
                self._refuse(name, f"{image} could not be mounted: {exc.detail or exc.message}")
                return
            except BaseException:
                # A stop signal while `mount` ran: what it mounted is ours to unmount.
                if mounted_image(mountpoint) == image.resolve():
                    self._mounted.append(mountpoint)
                raise
        self._mounted.append(mountpoint)

    def _refuse(self, name: str, why: str) -> None:
        logger.error("workspace %s is refused until this is repaired: %s", name, why)
        self.refused.add(name)

    def check_free(self, name: str) -> None:
        """Raises TooLarge when the images' file system has less free space than a quota."""
        st = os.statvfs(self.images)
        free = st.f_bavail * st.f_frsize
        if free < self.size:
            logger.warning(
                "workspace %s: not created, %d bytes free in %s for a quota of %d",
                name,
                free,
                self.images,
                self.size,
            )
            raise TooLarge(
                f"workspace {name} was not created: the server has less free disk space "
                "than a workspace's quota"
            )

    def create(self, name: str) -> None:
        """Give the new, empty workspace directory ``name`` its own filesystem.

        Raises:
            SandboxError: the image could not be made or mounted (details are logged).
        """
        mountpoint = self.root / name
        create_quota_workspace(self.images / f"{name}.img", mountpoint, self.size)
        self._mounted.append(mountpoint)

    def close(self) -> None:
        for mountpoint in self._mounted:
            try:
                unmount_quota_workspace(mountpoint)
            except SandboxError as exc:
                logger.warning(
                    "workspace: could not unmount %s: %s", mountpoint, exc.detail or exc.message
                )
        self._mounted = []
