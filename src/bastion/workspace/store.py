"""The configured root directory and the workspaces in it, created and listed by name.

The root is opened once as a directory descriptor; each workspace is opened from it with
``O_NOFOLLOW``, so a workspace replaced by a symlink is refused. A principal (behind a
gateway) may create at most its share of the workspaces (``Creators`` remembers whose
each is). With a ``DiskQuota`` each new workspace is its own size-capped filesystem, and
one whose filesystem could not be mounted at start is refused (and not ``listed``).
Each workspace has one
``Workspace`` record: a lock that serializes writers (so a version check and the write it
guards are not interleaved) and its ``Collaboration`` state.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import anyio

from bastion._types import Clock
from bastion.sandbox import SandboxError
from bastion.workspace.collab import Collaboration
from bastion.workspace.creators import Creators
from bastion.workspace.disk import DiskQuota
from bastion.workspace.errors import AlreadyExists, NotFound, Refused, TooLarge
from bastion.workspace.jail import DIR_FLAGS
from bastion.workspace.limits import WorkspaceLimits
from bastion.workspace.paths import WORKSPACE_NAME, check_workspace_name

__all__ = ["Workspace", "WorkspaceRoot"]

logger = logging.getLogger(__name__)

WORKSPACE_MODE = 0o755


@dataclass(slots=True)
class Workspace:
    name: str
    writer: anyio.Lock
    collab: Collaboration


class WorkspaceRoot:
    """The directory that holds the workspaces; ``close`` releases its descriptor."""

    def __init__(
        self,
        root: Path,
        limits: WorkspaceLimits,
        *,
        clock: Clock,
        wall: Callable[[], float],
        disk_quota: int | None = None,
    ) -> None:
        root.mkdir(mode=0o700, parents=False, exist_ok=True)
        self.path = root
        self.fd = os.open(root, DIR_FLAGS & ~os.O_NOFOLLOW)  # the root is the admin's choice
        self.limits = limits
        self._clock = clock
        self._wall = wall
        self._records: dict[str, Workspace] = {}
        self.creators = Creators(self.fd)
        try:
            self.disk = None if disk_quota is None else DiskQuota(root, disk_quota)
        except BaseException:
            os.close(self.fd)
            raise

    def close(self) -> None:
        if self.disk is not None:
            self.disk.close()
        os.close(self.fd)

    def names(self) -> list[str]:
        """The workspaces, sorted: directories (not symlinks) with valid names."""
        found: list[str] = []
        with os.scandir(self.fd) as entries:
            for entry in entries:
                if WORKSPACE_NAME.fullmatch(entry.name) and entry.is_dir(follow_symlinks=False):
                    found.append(entry.name)
        return sorted(found)

    def listed(self) -> list[str]:
        """The workspaces callers may use: ``names`` without those refused at start."""
        refused = set() if self.disk is None else self.disk.refused
        return [name for name in self.names() if name not in refused]

    def create(self, name: str, principal: str | None = None) -> Workspace:
        """Raises InvalidInput, AlreadyExists, or TooLarge past ``max_workspaces``, past
        ``principal``'s share of them, or when the disk has no room for a quota's image."""
        check_workspace_name(name)
        names = self.names()
        share = self.limits.max_workspaces_per_principal
        if principal is not None and self.creators.count(principal, names) >= share:
            raise TooLarge(
                f"you already created {share} of the server's "
                f"{self.limits.max_workspaces} workspaces"
            )
        if len(names) >= self.limits.max_workspaces:
            raise TooLarge(f"the server already has {self.limits.max_workspaces} workspaces")
        if self.disk is not None:
            self.disk.check_free(name)
        try:
            os.mkdir(name, WORKSPACE_MODE, dir_fd=self.fd)
        except FileExistsError:
            raise AlreadyExists(f"workspace {name} already exists") from None
        if self.disk is not None:
            try:
                self.disk.create(name)
            except SandboxError as exc:
                os.rmdir(name, dir_fd=self.fd)
                logger.warning("workspace %s: no disk quota: %s", name, exc.detail or exc.message)
                raise Refused(f"workspace {name} could not get its disk quota") from None
        if principal is not None:
            try:
                self.creators.record(name, principal, [*names, name])
            except OSError:
                os.rmdir(name, dir_fd=self.fd)  # unrecorded, it would escape the share
                raise
        return self.get(name)

    def get(self, name: str) -> Workspace:
        """The record of an existing workspace.

        Raises:
            InvalidInput: a bad name. NotFound: no such workspace. Refused: its disk image
            could not be mounted at start (the log says why).
        """
        check_workspace_name(name)
        if self.disk is not None and name in self.disk.refused:
            raise Refused(
                f"workspace {name} is unavailable: its disk could not be mounted "
                "(the server's log says why)"
            )
        record = self._records.get(name)
        if record is not None:
            return record
        st = self._lstat(name)
        if st is None or not stat.S_ISDIR(st.st_mode):
            raise NotFound(f"no workspace named {name} (create_workspace makes one)")
        record = Workspace(name, anyio.Lock(), Collaboration(self.limits, self._clock, self._wall))
        self._records[name] = record
        return record

    def known(self) -> list[Workspace]:
        return list(self._records.values())

    def _lstat(self, name: str) -> os.stat_result | None:
        try:
            return os.stat(name, dir_fd=self.fd, follow_symlinks=False)
        except FileNotFoundError:
            return None

    @contextlib.contextmanager
    def opened(self, name: str) -> Iterator[int]:
        """A descriptor of the workspace directory for one operation.

        Raises:
            NotFound: the workspace is gone. Refused: it was replaced by a symlink.
        """
        try:
            fd = os.open(name, DIR_FLAGS, dir_fd=self.fd)
        except FileNotFoundError:
            raise NotFound(f"no workspace named {name}") from None
        except NotADirectoryError:
            raise Refused(f"workspace {name} is not a directory") from None
        try:
            yield fd
        finally:
            os.close(fd)
