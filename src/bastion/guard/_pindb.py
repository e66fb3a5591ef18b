"""The pin database: SQLite, WAL, file 0600 in a 0700 directory; schema and opening only.

Tables: ``pins`` (the approved definition of each (server, tool)), ``pending`` (at most one
held definition per (server, tool): the latest offered; found by (server, hash) too),
``rejected`` (hashes an admin refused, kept held without new events) and ``earlier`` (pins
written before icons, execution and _meta were pinned: ``user_version`` 0; opening a
database marks them once).
Held prompts, resources and templates (TC-1) have their own three, keyed by ``kind``:
``definitions`` (the approved hash of each (server, kind, name)), ``held_definitions`` and
``rejected_definitions``; a database from before them (``user_version`` 1) gets them,
empty, when it is opened.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Final

from bastion._sqlite import open_private_db

__all__ = ["open_db"]

BUSY_TIMEOUT_S: Final = 5.0  # another process (the CLI approving a pin) holds the write lock
VERSION: Final = 2  # 1: every field of the MCP Tool is pinned; 2: definitions approvable

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
CREATE INDEX IF NOT EXISTS pending_by_hash ON pending (server, hash);
CREATE TABLE IF NOT EXISTS earlier (
    server TEXT NOT NULL, tool TEXT NOT NULL, PRIMARY KEY (server, tool)
);
CREATE TABLE IF NOT EXISTS rejected (
    server TEXT NOT NULL, tool TEXT NOT NULL, hash TEXT NOT NULL, rejected_by TEXT NOT NULL,
    rejected_at REAL NOT NULL, PRIMARY KEY (server, tool, hash)
);
CREATE TABLE IF NOT EXISTS definitions (
    server TEXT NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL, hash TEXT NOT NULL,
    definition TEXT NOT NULL, approved_by TEXT NOT NULL, approved_at REAL NOT NULL,
    PRIMARY KEY (server, kind, name)
);
CREATE TABLE IF NOT EXISTS held_definitions (
    server TEXT NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL, hash TEXT NOT NULL,
    definition TEXT NOT NULL, findings TEXT NOT NULL, first_seen REAL NOT NULL,
    PRIMARY KEY (server, kind, name)
);
CREATE TABLE IF NOT EXISTS rejected_definitions (
    server TEXT NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL, hash TEXT NOT NULL,
    rejected_by TEXT NOT NULL, rejected_at REAL NOT NULL, PRIMARY KEY (server, kind, hash)
);
"""


def open_db(path: Path) -> sqlite3.Connection:
    """Open or create the pin database at ``path`` (``:memory:`` for tests)."""
    conn = open_private_db(path, busy_timeout=BUSY_TIMEOUT_S)
    try:
        conn.executescript(_SCHEMA)
        with conn:
            conn.execute("BEGIN IMMEDIATE")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version < 1:
                conn.execute("INSERT OR IGNORE INTO earlier SELECT server, tool FROM pins")
            # 2 only added tables, which the schema above creates when they are missing.
            if version < VERSION:
                conn.execute(f"PRAGMA user_version = {VERSION}")
    except BaseException:
        conn.close()
        raise
    return conn
