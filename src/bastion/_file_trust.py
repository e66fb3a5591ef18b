"""Who may change a file: its owner, and whoever may write it or a directory on its way;
and who may read a secret one.

``untrusted_step`` follows a path as the kernel does when opening it (every directory, every
symlink and every component of its target, to the file) and names the first entry that a
user other than root or us could change: one owned by another user, or one writable by
others (or by a group that is not our user private group), except a sticky directory (as
/tmp is: there only an entry's owner may rename or delete it). A symlink's own mode means
nothing; its owner and its directory decide who may repoint it. ``change_refused`` says it
as a message naming the file's role and the command that fixes it.

``read_refused`` says why a secret file (a private key) is not private: readable by others,
or by a group that is not our user private group.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Final, NamedTuple

__all__ = [
    "MAX_SYMLINKS",
    "Untrusted",
    "change_refused",
    "private_group",
    "read_refused",
    "untrusted_step",
]

MAX_SYMLINKS: Final = 40  # as Linux's ELOOP limit; the open fails beyond it anyway


class Untrusted(NamedTuple):
    """``entry`` (on the way to the file, or the file) may be changed by others: ``why`` (a
    predicate: "is writable by every user"), and the command that fixes it."""

    entry: Path
    why: str
    fix: str


def untrusted_step(path: Path) -> Untrusted | None:
    """The first entry on the way to ``path`` that others could change, or None. An entry
    that cannot be examined (missing, a loop) ends the walk: opening the file says why."""
    me = os.geteuid()
    pending = list((path if path.is_absolute() else Path.cwd() / path).parts[1:])
    current = Path("/")
    links = 0
    problem = _judge(current, me)
    while pending and problem is None:
        part = pending.pop(0)
        if part == "..":
            current = current.parent
            continue
        entry = current / part
        try:
            info = os.lstat(entry)
        except OSError:
            return None
        problem = _judge(entry, me, info)
        if not stat.S_ISLNK(info.st_mode):
            current = entry
            continue
        links += 1
        if links > MAX_SYMLINKS:
            return None
        try:
            target = Path(os.readlink(entry))
        except OSError:
            return None
        if target.is_absolute():
            current = Path("/")
            pending[:0] = target.parts[1:]
        else:
            pending[:0] = target.parts
    return problem


def change_refused(path: Path, what: str) -> str | None:
    """None when only root or we may change ``path`` (see ``untrusted_step``); else why not,
    ``what`` naming its role ("the configuration"): ``<path>: others may change <what>:
    <entry> <why>; run: <fix> <entry>``."""
    step = untrusted_step(path)
    if step is None:
        return None
    return (
        f"{path}: others may change {what}: {step.entry} {step.why}; run: {step.fix} {step.entry}"
    )


def read_refused(path: Path, what: str) -> str | None:
    """None when neither others nor a group other than our user private group may read the
    file at ``path`` (symlinks followed), or it cannot be examined (opening it says why);
    else why, with the ``chmod`` that fixes it."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    mode = stat.S_IMODE(info.st_mode)
    if mode & stat.S_IROTH:
        return f"{path}: every user may read {what} (mode {mode:04o}); run: chmod 600 {path}"
    if mode & stat.S_IRGRP and not private_group(info.st_gid):
        return (
            f"{path}: group {info.st_gid} may read {what} (mode {mode:04o}); run: chmod 600 {path}"
        )
    return None


def _judge(entry: Path, me: int, info: os.stat_result | None = None) -> Untrusted | None:
    try:
        info = info or os.lstat(entry)
    except OSError:
        return None
    if info.st_uid not in (0, me):
        return Untrusted(entry, f"belongs to another user (uid {info.st_uid})", f"chown {me}")
    mode = info.st_mode
    if stat.S_ISLNK(mode) or (stat.S_ISDIR(mode) and mode & stat.S_ISVTX):
        return None
    if mode & stat.S_IWOTH:
        return Untrusted(entry, "is writable by every user", "chmod o-w")
    if mode & stat.S_IWGRP and not private_group(info.st_gid):
        return Untrusted(entry, f"is writable by group {info.st_gid}", "chmod g-w")
    return None


def private_group(gid: int) -> bool:
    """Our primary group, named as we are, with no other member: a user private group."""
    import grp  # noqa: PLC0415 - POSIX only, as is every caller
    import pwd  # noqa: PLC0415

    try:
        user = pwd.getpwuid(os.getuid()).pw_name
        group = grp.getgrgid(gid)
    except KeyError:
        return False
    return gid == os.getgid() and group.gr_name == user and set(group.gr_mem) <= {user}
