"""The pin database: SQLite, WAL, file 0600 in a 0700 directory; schema and opening only.

Tables: ``pins`` (the approved definition of each (server, tool)), ``pending`` (at most one
held definition per (server, tool): the latest offered) and ``rejected`` (hashes an admin
refused, kept held without new events).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Final

from bastion._sqlite import open_private_db

__all__ = ["open_db"]

BUSY_TIMEOUT_S: Final = 5.0  # another process (the CLI approving a pin) holds the write lock

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS pins (
    server TEXT NOT NULL, tool TEXT NOT NULL, hash TEXT NOT NULL, definition TEXT NOT NULL,
    approved_by TEXT NOT NULL, approved_at REAL NOT NULL, PRIMARY KEY (server, tool)
);
CREATE TABLE IF NOT EXISTS pending (
    server TEXT NOT NULL, tool TEXT NOT NULL, hash TEXT NOT NULL, definition TEXT NOT NULL,
    old_hash TEXT, old_definition TEXT, reason TEXT NOT NULL, findings TEXT NOT NULL,
    first_seen REAL NOT NULL, PRIMARY KEY (server, tool)
);
CREATE TABLE IF NOT EXISTS rejected (
    server TEXT NOT NULL, tool TEXT NOT NULL, hash TEXT NOT NULL, rejected_by TEXT NOT NULL,
    rejected_at REAL NOT NULL, PRIMARY KEY (server, tool, hash)
);
"""


def open_db(path: Path) -> sqlite3.Connection:
    """Open or create the pin database at ``path`` (``:memory:`` for tests)."""
    conn = open_private_db(path, busy_timeout=BUSY_TIMEOUT_S)
    try:
        conn.executescript(_SCHEMA)
    except BaseException:
        conn.close()
        raise
    return conn
