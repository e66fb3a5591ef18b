"""The SQLite audit store: append-only from this API, one transaction per batch.

``AuditStore`` has no update or delete method, and triggers refuse UPDATE and DELETE on the
record, head and checkpoint tables, so only someone editing the file around Bastion can change
history, and ``verify`` catches that. Each ``append`` inserts its records, moves the stored
head (last seq + hash, which reveals truncation) and signs a checkpoint at every seq that is
a multiple of ``checkpoint_every``, all in one commit; each checkpoint names the one signed
before it (``prev_seq``), and a log from before that gains the column on open. WAL journal,
``synchronous=FULL``: a committed batch survives a power cut; batching amortises the fsync.
One writer at a time; several processes may share a log, since each batch continues from the
head it locked, and each checkpoint from the last one signed.
"""

from __future__ import annotations

import sqlite3
import time as _time
from pathlib import Path
from typing import TYPE_CHECKING, Final

from bastion._sqlite import open_private_db
from bastion.audit.chain import GENESIS, Chain
from bastion.audit.checkpoint import sign_checkpoint
from bastion.audit.keys import load_or_create_signing_key
from bastion.audit.record import AuditRecord, encode_bounded
from bastion.errors import InternalError

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from bastion._types import Clock

__all__ = ["DEFAULT_CHECKPOINT_EVERY", "SCHEMA_VERSION", "AuditStore", "AuditStoreError"]

SCHEMA_VERSION: Final = 2  # 2: checkpoints.prev_seq (NULL in rows written by version 1)
DEFAULT_CHECKPOINT_EVERY: Final = 1000
BUSY_TIMEOUT_S: Final = 5.0  # a reader holding a lock (tail --follow) must not stall us long

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS records (
    seq INTEGER PRIMARY KEY, prev TEXT NOT NULL, hash TEXT NOT NULL, record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS head (
    id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL, hash TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS checkpoints (
    seq INTEGER PRIMARY KEY, hash TEXT NOT NULL, time REAL NOT NULL,
    key_id TEXT NOT NULL, signature TEXT NOT NULL, prev_seq INTEGER);
CREATE TRIGGER IF NOT EXISTS records_append_only_u BEFORE UPDATE ON records
    BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END;
CREATE TRIGGER IF NOT EXISTS records_append_only_d BEFORE DELETE ON records
    BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END;
CREATE TRIGGER IF NOT EXISTS checkpoints_append_only_u BEFORE UPDATE ON checkpoints
    BEGIN SELECT RAISE(ABORT, 'audit checkpoints are append-only'); END;
CREATE TRIGGER IF NOT EXISTS checkpoints_append_only_d BEFORE DELETE ON checkpoints
    BEGIN SELECT RAISE(ABORT, 'audit checkpoints are append-only'); END;
CREATE TRIGGER IF NOT EXISTS head_no_delete BEFORE DELETE ON head
    BEGIN SELECT RAISE(ABORT, 'the audit head cannot be deleted'); END;
"""


class AuditStoreError(InternalError):
    """The audit store cannot be written safely (e.g. its head does not match its records)."""


class AuditStore:
    """An open audit database; create with ``AuditStore.open(path)`` and ``close()`` it."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        db_path: Path,
        *,
        checkpoint_every: int,
        wall_clock: Clock,
    ) -> None:
        self._conn = conn
        self._key = load_or_create_signing_key(db_path)
        self._every = checkpoint_every
        self._wall = wall_clock
        self._chain = self._load_head()

    @classmethod
    def open(
        cls,
        db_path: Path,
        *,
        checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY,
        wall_clock: Clock = _time.time,
    ) -> AuditStore:
        """Open or create the database (directory 0700, file 0600) and its signing key.

        Raises:
            AuditStoreError: the stored head does not match the last record.
            ConfigError: the signing key is unusable (see ``keys``).
        """
        if checkpoint_every < 1:
            raise ValueError("checkpoint_every must be >= 1")
        conn = open_private_db(db_path, busy_timeout=BUSY_TIMEOUT_S)
        try:
            conn.executescript(_SCHEMA)
            _migrate(conn)
            return cls(conn, db_path, checkpoint_every=checkpoint_every, wall_clock=wall_clock)
        except BaseException:
            conn.close()
            raise

    @property
    def seq(self) -> int:
        """The last seq written (0 if the log is empty)."""
        return self._chain.seq

    def _load_head(self) -> Chain:
        head = self._conn.execute("SELECT seq, hash FROM head WHERE id = 1").fetchone()
        last = self._conn.execute(
            "SELECT seq, hash FROM records ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        if head is None and last is None:
            return Chain(0, GENESIS)
        if head is None or last is None or tuple(head) != tuple(last):
            raise AuditStoreError(
                f"audit head {head!r} does not match the last record {last!r}; "
                "run `bastion audit verify` before writing more"
            )
        return Chain(head[0], bytes.fromhex(head[1]))

    def append(self, records: Iterable[AuditRecord]) -> int:
        """Chain and write ``records`` (``bounded``) in one transaction; return the last seq."""
        return self.append_encoded([encode_bounded(record)[1] for record in records])

    def append_encoded(self, bodies: Sequence[bytes]) -> int:
        """``append`` for records already encoded with ``canonical_bytes`` (the caller's
        promise: the hash chain covers these exact bytes, and ``verify`` re-encodes them)."""
        if not bodies:
            return self._chain.seq
        with self._transaction():
            # Under the write lock, continue from the stored head: several processes (one
            # gateway per stdio client) may append to the same log, each in its turn.
            chain = self._stored_head()
            rows, due, prev = [], [], chain.head.hex()
            for body in bodies:
                link = chain.append(body)
                head = link.hash.hex()
                rows.append((link.seq, prev, head, body.decode()))
                prev = head
                if link.seq % self._every == 0:
                    due.append((link.seq, link.hash))
            self._conn.executemany("INSERT INTO records VALUES (?, ?, ?, ?)", rows)
            self._set_head(chain)
            for seq, signed in due:
                self._write_checkpoint(seq, signed)
        self._chain = chain
        return chain.seq

    def checkpoint(self) -> None:
        """Sign the stored head unless it is already signed (called on close)."""
        with self._transaction():
            # The stored head, not ours: another process may have appended since, and
            # checkpoints must be signed in seq order to chain.
            chain = self._stored_head()
            if chain.seq > self._last_checkpoint():
                self._write_checkpoint(chain.seq, chain.head)

    def close(self) -> None:
        self._conn.close()

    def _stored_head(self) -> Chain:
        # ``open`` checked that the head matches the last record; appends move both at once.
        head = self._conn.execute("SELECT seq, hash FROM head WHERE id = 1").fetchone()
        return Chain(0, GENESIS) if head is None else Chain(head[0], bytes.fromhex(head[1]))

    def _set_head(self, chain: Chain) -> None:
        self._conn.execute(
            "INSERT INTO head VALUES (1, ?, ?) ON CONFLICT(id) DO UPDATE "
            "SET seq = excluded.seq, hash = excluded.hash",
            (chain.seq, chain.head.hex()),
        )

    def _last_checkpoint(self) -> int:
        return int(self._conn.execute("SELECT max(seq) FROM checkpoints").fetchone()[0] or 0)

    def _write_checkpoint(self, seq: int, head: bytes) -> None:
        # Under the write lock, after the last checkpoint any process signed: seqs above the
        # stored head (or the head itself, on close) come after every checkpoint there is.
        cp = sign_checkpoint(self._key, seq, head, self._wall(), prev_seq=self._last_checkpoint())
        self._conn.execute(
            "INSERT INTO checkpoints (seq, hash, time, key_id, signature, prev_seq) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (cp.seq, cp.hash.hex(), cp.time, cp.key_id, cp.signature.hex(), cp.prev_seq),
        )

    def _transaction(self) -> _Transaction:
        return _Transaction(self._conn)


def _migrate(conn: sqlite3.Connection) -> None:
    """Record the schema version; bring a version-1 log to version 2 (its checkpoints keep
    ``prev_seq`` NULL: they were signed unchained, and verify says so)."""
    with _Transaction(conn):  # several processes may open an old log at once
        conn.execute(
            "INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
        )
        columns = {row[1] for row in conn.execute("PRAGMA table_info(checkpoints)")}
        if "prev_seq" not in columns:
            conn.execute("ALTER TABLE checkpoints ADD COLUMN prev_seq INTEGER")
            conn.execute(
                "UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),)
            )


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any exception."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def __enter__(self) -> None:
        self._conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self._conn.execute("ROLLBACK" if exc_type is not None else "COMMIT")
