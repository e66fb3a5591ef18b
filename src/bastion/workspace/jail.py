"""File access confined to one workspace directory, by descriptor walking (never by path).

Every operation starts from the workspace's directory descriptor and opens one component
at a time with ``O_NOFOLLOW | O_DIRECTORY`` relative to the previous one, so a symlink, a
``..`` or a directory swapped for a symlink halfway through an operation cannot lead
outside: the kernel refuses the symlink instead of following it, and directories already
opened stay the ones we checked. Nothing is checked by path and then opened by path.

Files are read only if, once opened (``O_NONBLOCK``, so a FIFO cannot hang us), they are
regular files with a single link: devices, FIFOs and sockets are refused, and so are hard
links, which could alias a file outside the workspace. Writes go to a new temporary file
that is renamed over the name, which replaces a directory entry and never writes through
a symlink or hard link. Functions here block; callers run them in a worker thread.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import os
import secrets
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

from bastion.workspace.errors import (
    AlreadyExists,
    Conflict,
    InvalidInput,
    NotFound,
    Refused,
    TooLarge,
    WorkspaceError,
)
from bastion.workspace.paths import RelPath

__all__ = [
    "FileData",
    "WriteOutcome",
    "lstat",
    "mapped_errors",
    "open_dir",
    "open_regular",
    "read_file",
    "rename_noreplace",
    "version_of",
    "write_file",
]

DIR_FLAGS: Final = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: opening a FIFO must not wait for a writer; O_NOCTTY: never adopt a terminal.
READ_FLAGS: Final = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
TEMP_FLAGS: Final = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
NEW_FILE_MODE: Final = 0o644
NEW_DIR_MODE: Final = 0o755
VERSION_PREFIX: Final = "sha256:"
RENAME_NOREPLACE: Final = 1
_LIBC: Final = ctypes.CDLL(None, use_errno=True)


@dataclass(frozen=True, slots=True)
class FileData:
    data: bytes
    version: str
    mode: int


@dataclass(frozen=True, slots=True)
class WriteOutcome:
    version: str
    size: int
    created: bool
    previous_version: str | None


def version_of(data: bytes) -> str:
    """The version token of a file's content: equal content, equal token, across restarts."""
    return VERSION_PREFIX + hashlib.sha256(data).hexdigest()[:32]


@contextlib.contextmanager
def mapped_errors(rel: RelPath) -> Iterator[None]:
    """Turn ``OSError`` into a ``WorkspaceError`` naming ``rel``, never the OS's own text."""
    try:
        yield
    except OSError as exc:
        raise _mapped(exc, rel.display) from exc


def _mapped(exc: OSError, where: str) -> WorkspaceError:
    code = exc.errno
    if code == errno.ENOENT:
        return NotFound(f"{where}: no such file or directory")
    if code in (errno.ELOOP, errno.EMLINK):
        return Refused(f"{where}: symbolic links are not followed in a workspace")
    if code == errno.ENOTDIR:
        return NotFound(f"{where}: a path component is not a directory")
    if code == errno.EISDIR:
        return InvalidInput(f"{where} is a directory")
    if code == errno.EEXIST:
        return AlreadyExists(f"{where} already exists")
    if code == errno.ENOTEMPTY:
        return InvalidInput(f"{where} is a directory that is not empty (pass recursive)")
    if code in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return TooLarge("the workspace is out of disk space or over its quota")
    if code in (errno.EACCES, errno.EPERM, errno.EROFS):
        return Refused(f"{where}: permission denied")
    if code == errno.ENAMETOOLONG:
        return InvalidInput(f"{where}: name too long")
    if code == errno.EINVAL:
        return InvalidInput(f"{where}: invalid operation (a directory into itself?)")
    name = errno.errorcode.get(code or 0, "unknown error")
    return Refused(f"{where}: operation failed ({name})")


def open_dir(ws_fd: int, parts: tuple[str, ...], *, create: bool = False) -> int:
    """A new descriptor for the directory ``parts`` under ``ws_fd`` (the caller closes it).

    Raises:
        WorkspaceError: a component is missing (and not ``create``), a symlink, or a file.
    """
    fd = os.open(".", DIR_FLAGS, dir_fd=ws_fd)
    try:
        for depth, part in enumerate(parts):
            where = RelPath(parts[: depth + 1])
            with mapped_errors(where):
                if create:
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(part, NEW_DIR_MODE, dir_fd=fd)
                try:
                    child = os.open(part, DIR_FLAGS, dir_fd=fd)
                except NotADirectoryError:
                    kind = os.stat(part, dir_fd=fd, follow_symlinks=False).st_mode
                    if stat.S_ISLNK(kind):
                        raise Refused(
                            f"{where.display}: symbolic links are not followed in a workspace"
                        ) from None
                    raise NotFound(f"{where.display} is not a directory") from None
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def lstat(dir_fd: int, name: str) -> os.stat_result | None:
    """The entry ``name`` itself (a symlink is not followed), or None when absent."""
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _refuse_non_regular(mode: int, where: str) -> None:
    if stat.S_ISREG(mode):
        return
    if stat.S_ISLNK(mode):
        raise Refused(f"{where} is a symbolic link; links are not followed in a workspace")
    if stat.S_ISDIR(mode):
        raise InvalidInput(f"{where} is a directory")
    kind = "a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "a device"
    raise Refused(f"{where} is {kind}, not a regular file")


def open_regular(dir_fd: int, name: str, where: str) -> tuple[int, os.stat_result]:
    """Open ``name`` for reading if it is a regular file with one link; checked on the
    descriptor after opening, so a swap between the look and the open is caught.

    Raises:
        WorkspaceError: missing, not a regular file, or hard-linked.
    """
    before = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    # The look before the open only avoids opening devices at all; the check that
    # decides is the one on the open descriptor below.
    _refuse_non_regular(before.st_mode, where)
    fd = os.open(name, READ_FLAGS, dir_fd=dir_fd)
    try:
        after = os.fstat(fd)
        _refuse_non_regular(after.st_mode, where)
        if (after.st_dev, after.st_ino) != (before.st_dev, before.st_ino):
            raise Conflict(f"{where} was replaced while being opened; try again")
        if after.st_nlink > 1:
            raise Refused(
                f"{where} has {after.st_nlink} hard links; refused, since a hard link "
                "can alias a file outside the workspace"
            )
    except BaseException:
        os.close(fd)
        raise
    return fd, after


def _read_all(fd: int, size_cap: int, where: str) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while chunk := os.read(fd, 1 << 16):
        total += len(chunk)
        if total > size_cap:
            raise TooLarge(f"{where} is larger than {size_cap} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def read_file(ws_fd: int, rel: RelPath, size_cap: int) -> FileData:
    """The content of a regular file in the workspace.

    Raises:
        WorkspaceError: see ``open_dir`` and ``open_regular``; TooLarge past ``size_cap``.
    """
    with mapped_errors(rel):
        dir_fd = open_dir(ws_fd, rel.parent.parts)
        try:
            return _read_at(dir_fd, rel.name, rel.display, size_cap)
        finally:
            os.close(dir_fd)


def _read_at(dir_fd: int, name: str, where: str, size_cap: int) -> FileData:
    fd, st = open_regular(dir_fd, name, where)
    try:
        if st.st_size > size_cap:
            raise TooLarge(f"{where} is {st.st_size} bytes; the limit is {size_cap}")
        data = _read_all(fd, size_cap, where)
    finally:
        os.close(fd)
    return FileData(data=data, version=version_of(data), mode=stat.S_IMODE(st.st_mode))


def write_file(
    ws_fd: int,
    rel: RelPath,
    data: bytes,
    *,
    expected_version: str | None,
    create_only: bool,
    make_dirs: bool,
    size_cap: int,
) -> WriteOutcome:
    """Replace (or create) a file atomically, after checking the version the agent saw.

    The caller serializes writers of one workspace, so the check and the rename are not
    interleaved with another agent's write through this server.

    Raises:
        Conflict: ``expected_version`` is not the file's current version.
        AlreadyExists: ``create_only`` and the file exists.
        WorkspaceError: the path is refused (see ``open_dir``, ``open_regular``).
    """
    name = rel.name
    with mapped_errors(rel):
        dir_fd = open_dir(ws_fd, rel.parent.parts, create=make_dirs)
        try:
            exists = lstat(dir_fd, name) is not None
            if exists and create_only:
                raise AlreadyExists(f"{rel.display} already exists (create-only write)")
            previous: str | None = None
            mode = NEW_FILE_MODE
            if exists and expected_version is not None:
                current = _read_at(dir_fd, name, rel.display, size_cap)
                previous, mode = current.version, current.mode
            elif exists:
                # Unconditional overwrite: the content does not matter, what it is does.
                fd, st = open_regular(dir_fd, name, rel.display)
                os.close(fd)
                mode = stat.S_IMODE(st.st_mode)
            if expected_version is not None and previous != expected_version:
                if previous is None:
                    raise Conflict(
                        f"{rel.display} does not exist, but version {expected_version} "
                        "was expected; read it again"
                    )
                raise Conflict(
                    f"{rel.display} changed: it is at version {previous}, you expected "
                    f"{expected_version}; read it again and redo your change"
                )
            # No setuid, setgid or sticky bits survive a write.
            _replace(dir_fd, name, data, mode & 0o777, create_only=create_only)
        finally:
            os.close(dir_fd)
    return WriteOutcome(
        version=version_of(data), size=len(data), created=not exists, previous_version=previous
    )


def _replace(dir_fd: int, name: str, data: bytes, mode: int, *, create_only: bool) -> None:
    temp = f".bastion-tmp-{secrets.token_hex(8)}"
    fd = os.open(temp, TEMP_FLAGS, NEW_FILE_MODE, dir_fd=dir_fd)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fchmod(fd, mode)
        finally:
            os.close(fd)
        if create_only:
            rename_noreplace(dir_fd, temp, dir_fd, name)
        else:
            # rename replaces the entry itself: a symlink or hard link swapped in at the
            # last moment is unlinked, never written through.
            os.rename(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp, dir_fd=dir_fd)
        raise


def rename_noreplace(src_dir: int, src: str, dst_dir: int, dst: str) -> None:
    """``renameat2(RENAME_NOREPLACE)``: fails with EEXIST instead of replacing ``dst``."""
    result = _LIBC.renameat2(src_dir, os.fsencode(src), dst_dir, os.fsencode(dst), RENAME_NOREPLACE)
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))
