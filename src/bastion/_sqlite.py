"""Opening Bastion's own SQLite files (audit log, API keys, tool pins) the one safe way.

The directory is created 0700 and the file 0600 before SQLite touches it (SQLite gives the
``-wal`` and ``-shm`` files the main file's mode, so that covers all three). An existing
directory, file, ``-wal`` or ``-shm`` that group or others may write, or that another user
(not root, not us) owns, is refused before it is opened: whoever may write these files may
rewrite what they hold (make an API key admin, un-revoke it, approve a tool). A sticky
directory is no excuse, since anyone who may create files there may plant the ``-wal`` that
SQLite reads. The connection is in autocommit mode (callers run ``BEGIN IMMEDIATE``
themselves), WAL, ``synchronous=FULL`` and waits ``busy_timeout`` seconds for another
process's lock.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
from pathlib import Path
from typing import Final

__all__ = ["UnsafeFileError", "check_private_db", "open_private_db"]

_SIDE_FILES: Final = ("-wal", "-shm")


class UnsafeFileError(PermissionError):
    """A database file or its directory may be written by someone else; the message names
    it and the ``chmod``/``chown`` that fixes it."""


def open_private_db(path: Path, *, busy_timeout: float) -> sqlite3.Connection:
    """Raises: UnsafeFileError (an OSError): see ``check_private_db``; sqlite3.Error,
    OSError: the file cannot be created or opened."""
    if str(path) != ":memory:":
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        check_private_db(path)
        with contextlib.suppress(FileExistsError):
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    conn = sqlite3.connect(
        path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
    )
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
    except BaseException:
        conn.close()
        raise
    return conn


def check_private_db(path: Path) -> None:
    """Refuse the database at ``path`` (symlinks followed) if its directory, the file, or its
    ``-wal`` or ``-shm`` (those that exist) is writable by group or others or owned by
    another user than root or us.

    Raises:
        UnsafeFileError: naming the first such path and the command that fixes it.
        OSError: the directory cannot be examined.
    """
    real = path.resolve()
    _check(real.parent)
    for each in (real, *(real.with_name(real.name + side) for side in _SIDE_FILES)):
        with contextlib.suppress(FileNotFoundError):
            _check(each)


def _check(path: Path) -> None:
    status = path.stat()
    me = os.geteuid()
    if status.st_uid not in (0, me):
        raise UnsafeFileError(
            f"{path} is owned by another user (uid {status.st_uid}), who may rewrite it;"
            f" run: chown {me} {path}"
        )
    if status.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise UnsafeFileError(
            f"{path} may be written by group or others, who may rewrite it; run: chmod go-w {path}"
        )
