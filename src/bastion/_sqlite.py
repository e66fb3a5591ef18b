"""Opening Bastion's own SQLite files (audit log, API keys, tool pins) the one safe way.

The directory is created 0700 and the file 0600 before SQLite touches it (SQLite gives the
``-wal`` and ``-shm`` files the main file's mode, so that covers all three); the connection
is in autocommit mode (callers run ``BEGIN IMMEDIATE`` themselves), WAL, ``synchronous=FULL``
and waits ``busy_timeout`` seconds for another process's lock.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path

__all__ = ["open_private_db"]


def open_private_db(path: Path, *, busy_timeout: float) -> sqlite3.Connection:
    """Raises: sqlite3.Error, OSError: the file cannot be created or opened."""
    if str(path) != ":memory:":
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
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
