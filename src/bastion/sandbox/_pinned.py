"""The workspace's bind sources, pinned when checked: opened once, handed over by descriptor.

bwrap resolves a ``--bind SRC DEST`` path only when it starts. Until then whoever can write
in the workspace (another command running in it) could swap a checked directory for a
symlink, and bwrap would mount the symlink's target: any directory of the host, read-write.
``PinnedWorkspace`` opens the workspace (from ``/``) and each path inside it (from the
nearest directory already open, the workspace at worst) ``O_PATH``, one component at a
time, refusing a symlink at every step, and checks what it opened: a directory or regular
file, still at the path that was checked. bwrap gets ``--bind-fd``/``--ro-bind-fd``, binds
that inode, and dies when it cannot or ("Race condition binding dirfd") when its mount point
then shows anything else; so a swap after the check binds what was checked, or runs nothing.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
from pathlib import Path
from typing import Final

from bastion.sandbox.errors import SandboxError
from bastion.sandbox.launcher import FIRST_PASSED_FD

__all__ = ["PinnedWorkspace"]

_PATH: Final = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC


class PinnedWorkspace:
    """Open descriptors of ``root`` (a real path) and paths below it: ``pin`` each, then
    ``hand_over()`` those pinned (or ``close()`` all on failure)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._open: dict[Path, int] = {}  # what was walked, to walk on from
        self._handed: list[int] = []

    def pin(self, path: Path, *, directory: bool = False) -> int:
        """A new descriptor of ``path`` (the root or a real path below it), numbered from
        ``FIRST_PASSED_FD`` up, clear of the launcher's own. A fresh one at each call:
        bwrap closes each after its bind.

        Raises:
            SandboxError: ``path`` is not below the root, or (changed since it was checked)
                has a symlink or a missing component, is not a directory (``directory``) or
                regular file, or is no longer where it was.
        """
        try:
            fd = fcntl.fcntl(self._walk(path, directory), fcntl.F_DUPFD_CLOEXEC, FIRST_PASSED_FD)
        except OSError:
            raise SandboxError(f"{self._shown(path)} changed while it was checked") from None
        self._handed.append(fd)
        return fd

    def _walk(self, path: Path, directory: bool) -> int:
        if path in self._open:
            self._check(self._open[path], path, directory=directory)
            return self._open[path]
        if path != self.root:
            if self.root not in path.parents:
                raise SandboxError("a bound path leaves the workspace")
            self._walk(self.root, directory=True)
        start = next((p for p in path.parents if p in self._open), None)
        parts = path.relative_to(start or "/").parts
        fd = self._open[start] if start is not None else os.open("/", _PATH | os.O_DIRECTORY)
        owned = start is None
        try:
            for i, name in enumerate(parts):
                if name in (".", ".."):
                    raise OSError(f"{name} in a real path")
                last = i == len(parts) - 1
                flags = _PATH | (os.O_DIRECTORY if directory or not last else 0)
                step = os.open(name, flags, dir_fd=fd)
                if owned:
                    os.close(fd)
                fd, owned = step, True
            self._check(fd, path, directory=directory)
        except BaseException:
            if owned:
                os.close(fd)
            raise
        self._open[path] = fd
        return fd

    @staticmethod
    def _check(fd: int, path: Path, *, directory: bool) -> None:
        mode = os.fstat(fd).st_mode  # an O_NOFOLLOW O_PATH open of a symlink is the link
        if not (stat.S_ISDIR(mode) or (stat.S_ISREG(mode) and not directory)):
            raise OSError("not a directory or regular file")
        if os.readlink(f"/proc/self/fd/{fd}") != str(path):
            raise OSError("moved")  # renamed while we walked: not what was checked

    def _shown(self, path: Path) -> str:
        # The workspace's own host path is not the caller's business.
        if path == self.root or self.root not in path.parents:
            return "the workspace"
        return repr(path.relative_to(self.root).as_posix())

    def hand_over(self) -> tuple[int, ...]:
        """Every descriptor ``pin`` returned, now the caller's to pass on and close; the
        others (opened on the way) are closed."""
        handed, self._handed = tuple(self._handed), []
        self.close()
        return handed

    def close(self) -> None:
        fds = [*self._handed, *self._open.values()]
        self._handed, self._open = [], {}
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)
