"""Per-command cgroups: memory and pids limits where the host lets us, v1 or v2.

``detect_cgroups`` finds, once, where memory and pids controllers are mounted and
writable (a v2 hierarchy with both controllers, else the v1 ``memory`` and ``pids``
hierarchies, each independently). ``CommandCgroup`` is one command's group: created with
its limits before the launch, joined by the launcher before it execs the sandbox (so no
child escapes it), asked afterwards whether the OOM killer fired, emptied with SIGKILL and
removed. What is in force is logged, and reported in each result.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from pathlib import Path
from typing import Final

import msgspec

__all__ = ["CgroupSupport", "CommandCgroup", "detect_cgroups"]

logger = logging.getLogger(__name__)

_PARENT: Final = "bastion-sandbox"
_KILL_ROUNDS: Final = 50  # v1 has no cgroup.kill: kill what is listed until nothing is
_RMDIR_WAIT: Final = 2.0  # seconds for killed members to be reaped before rmdir


class CgroupSupport(msgspec.Struct, frozen=True, kw_only=True):
    """Where per-command groups go: ``v2`` one directory; v1 one per controller."""

    version: int  # 1 or 2; 0 when no usable controller exists
    v2: Path | None = None
    memory: Path | None = None
    pids: Path | None = None

    @property
    def describe(self) -> str:
        if self.version == 2:
            return "cgroup v2 memory+pids"
        parts = [name for name, path in (("memory", self.memory), ("pids", self.pids)) if path]
        return f"cgroup v1 {'+'.join(parts)}" if parts else "no cgroup limits"


def _mounts() -> list[tuple[str, str, set[str]]]:
    found = []
    with open("/proc/self/mounts", encoding="utf-8") as mounts:
        for line in mounts:
            fields = line.split()
            if len(fields) >= 4 and fields[2] in ("cgroup", "cgroup2"):
                found.append((fields[2], fields[1], set(fields[3].split(","))))
    return found


def _prepare_parent(base: Path, v2_controllers: str = "") -> Path | None:
    parent = base / _PARENT
    try:
        parent.mkdir(exist_ok=True)
        if v2_controllers:
            for directory in (base, parent):
                (directory / "cgroup.subtree_control").write_text(v2_controllers)
    except OSError as exc:
        logger.info("sandbox: cannot use cgroup %s: %s", base, exc)
        return None
    return parent


def detect_cgroups() -> CgroupSupport:
    """The cgroup controllers this process can use for sandboxed commands."""
    mounts = _mounts()
    for kind, path, _ in mounts:
        if kind != "cgroup2":
            continue
        try:
            controllers = set((Path(path) / "cgroup.controllers").read_text().split())
        except OSError:
            continue
        if {"memory", "pids"} <= controllers:
            parent = _prepare_parent(Path(path), "+memory +pids")
            if parent is not None:
                return CgroupSupport(version=2, v2=parent)
    memory = pids = None
    for kind, path, options in mounts:
        if kind == "cgroup" and "memory" in options and memory is None:
            memory = _prepare_parent(Path(path))
        if kind == "cgroup" and "pids" in options and pids is None:
            pids = _prepare_parent(Path(path))
    if memory or pids:
        return CgroupSupport(version=1, memory=memory, pids=pids)
    return CgroupSupport(version=0)


class CommandCgroup:
    """The cgroup(s) of one command. ``procs_files`` are what the launcher joins."""

    def __init__(self, support: CgroupSupport, name: str) -> None:
        self.support = support
        self.dirs: list[Path] = []
        self.enforced: list[str] = []
        self._name = name

    def create(self, memory_bytes: int | None, processes: int | None) -> None:
        """Make the groups and write the limits; a group that cannot be made is skipped
        (and left out of ``enforced``), never fatal."""
        support = self.support
        if support.version == 2 and support.v2 is not None:
            group = self._mkdir(support.v2)
            if group is not None:
                if memory_bytes is not None:
                    self._write(group / "memory.max", memory_bytes, "memory")
                    with contextlib.suppress(OSError):
                        (group / "memory.swap.max").write_text("0")
                if processes is not None:
                    self._write(group / "pids.max", processes, "pids")
            return
        if support.memory is not None and memory_bytes is not None:
            group = self._mkdir(support.memory)
            if group is not None:
                self._write(group / "memory.limit_in_bytes", memory_bytes, "memory")
                with contextlib.suppress(OSError):  # only with swap accounting
                    (group / "memory.memsw.limit_in_bytes").write_text(str(memory_bytes))
        if support.pids is not None and processes is not None:
            group = self._mkdir(support.pids)
            if group is not None:
                self._write(group / "pids.max", processes, "pids")

    def _mkdir(self, parent: Path) -> Path | None:
        group = parent / self._name
        try:
            group.mkdir()
        except OSError as exc:
            logger.warning("sandbox: cannot create cgroup %s: %s", group, exc)
            return None
        self.dirs.append(group)
        return group

    def _write(self, path: Path, value: int, label: str) -> None:
        try:
            path.write_text(str(value))
        except OSError as exc:
            logger.warning("sandbox: cannot set %s: %s", path, exc)
            return
        self.enforced.append(f"cgroup-v{self.support.version}-{label}")

    @property
    def bounds_processes(self) -> bool:
        """Whether a pids limit is in force (it counts this command's processes alone)."""
        return f"cgroup-v{self.support.version}-pids" in self.enforced

    @property
    def procs_files(self) -> list[Path]:
        return [group / "cgroup.procs" for group in self.dirs]

    def oom_killed(self) -> bool:
        """Whether the kernel's OOM killer fired in this group (the memory limit hit)."""
        name = "memory.events" if self.support.version == 2 else "memory.oom_control"
        for group in self.dirs:
            try:
                text = (group / name).read_text()
            except OSError:
                continue
            for line in text.splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill" and int(value or 0) > 0:
                    return True
        return False

    def members(self) -> list[int]:
        pids: set[int] = set()
        for procs in self.procs_files:
            with contextlib.suppress(OSError):
                pids.update(int(p) for p in procs.read_text().split())
        return sorted(pids)

    def kill(self) -> None:
        """SIGKILL every member (``cgroup.kill`` on v2; on v1, until the list is empty)."""
        for group in self.dirs:
            with contextlib.suppress(OSError):
                (group / "cgroup.kill").write_text("1")
        for _ in range(_KILL_ROUNDS):
            members = self.members()
            if not members:
                return
            for pid in members:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    def remove(self) -> None:
        """Kill what is left and remove the groups (bounded wait for reaping)."""
        self.kill()
        deadline = time.monotonic() + _RMDIR_WAIT
        for group in reversed(self.dirs):
            while True:
                try:
                    group.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        logger.warning("sandbox: cgroup %s not removed (still busy)", group)
                        break
                    time.sleep(0.005)
        self.dirs.clear()
