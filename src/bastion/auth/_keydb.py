"""The API-key database file: schema, creation with private modes, connection settings,
and the statements that take back a key change (``undo_grant``).

Created 0600 (``O_EXCL``: never adopt a file someone else prepared) in a 0700 directory;
SQLite gives the ``-wal``/``-shm`` files the database's mode. WAL lets the gateway read
while the CLI writes; autocommit means every verify sees the latest committed change.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Final

from bastion._sqlite import open_private_db

__all__ = [
    "SCHEMA_VERSION",
    "SELECT_ALL",
    "SELECT_BY_ID",
    "SELECT_CURRENT",
    "SELECT_FOR_VERIFY",
    "Transaction",
    "open_db",
    "undo_grant",
]

SCHEMA_VERSION: Final = 1
BUSY_TIMEOUT_MS: Final = 5000  # a CLI write holds the lock for milliseconds

# Every query names the record's columns in this order (keys._record unpacks them).
SELECT_ALL: Final = """SELECT id, name, roles, created, expires, revoked_at, rotated_from,
    not_after, last_used, break_glass FROM keys ORDER BY created, id"""
SELECT_BY_ID: Final = """SELECT id, name, roles, created, expires, revoked_at, rotated_from,
    not_after, last_used, break_glass FROM keys WHERE id = ?"""
SELECT_CURRENT: Final = """SELECT id, name, roles, created, expires, revoked_at, rotated_from,
    not_after, last_used, break_glass FROM keys
    WHERE name = ? AND revoked_at IS NULL AND not_after IS NULL"""
SELECT_FOR_VERIFY: Final = """SELECT id, name, roles, created, expires, revoked_at,
    rotated_from, not_after, last_used, break_glass, digest FROM keys WHERE id = ?"""

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    roles TEXT NOT NULL,
    digest BLOB NOT NULL,
    created REAL NOT NULL,
    expires REAL,
    revoked_at REAL,
    rotated_from TEXT,
    not_after REAL,
    last_used REAL,
    break_glass INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE UNIQUE INDEX IF NOT EXISTS keys_current_name
    ON keys (name) WHERE revoked_at IS NULL AND not_after IS NULL;
"""


def open_db(path: Path) -> sqlite3.Connection:
    """A connection to the key database at ``path``, created with its schema if missing.

    Raises:
        sqlite3.Error, OSError: the file cannot be created or opened, or has a newer schema.
    """
    conn = open_private_db(path, busy_timeout=BUSY_TIMEOUT_MS / 1000)
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise sqlite3.DatabaseError(f"schema version {version} is newer than this bastion")
        if version < SCHEMA_VERSION:
            conn.executescript(
                f"BEGIN IMMEDIATE; {_SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
            )
    except BaseException:
        conn.close()
        raise
    return conn


class Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on error); a failure to begin (the
    database is locked past the busy timeout, or unusable) raises ``error``."""

    def __init__(self, conn: sqlite3.Connection, error: type[Exception]) -> None:
        self._conn = conn
        self._error = error

    def __enter__(self) -> sqlite3.Connection:
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise self._error(f"key database busy or unusable: {exc}") from exc
        return self._conn

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        if kind is None:
            self._conn.execute("COMMIT")
        else:
            self._conn.execute("ROLLBACK")


def undo_grant(conn: sqlite3.Connection, key_id: str, rotated_from: str | None) -> None:
    """Take back the creation of ``key_id`` (never used: its secret was never shown) and,
    for a rotation, make ``rotated_from`` current again, unless it was revoked meanwhile or
    another current key took its name (the unique index would refuse a second one)."""
    conn.execute("DELETE FROM keys WHERE id = ? AND last_used IS NULL", (key_id,))
    if rotated_from is not None:
        conn.execute(
            "UPDATE keys SET not_after = NULL WHERE id = ? AND revoked_at IS NULL AND NOT EXISTS"
            " (SELECT 1 FROM keys AS k WHERE k.name = keys.name AND k.revoked_at IS NULL"
            " AND k.not_after IS NULL)",
            (rotated_from,),
        )
