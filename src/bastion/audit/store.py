"""The SQLite audit store: append-only from this API, one transaction per batch.

``AuditStore`` has no update or delete method, and triggers refuse UPDATE and DELETE on the
record, head and checkpoint tables, so only someone editing the file around Bastion can change
history, and ``verify`` catches that. Each ``append`` inserts its records, moves the stored
head (last seq + hash, which reveals truncation) and signs a checkpoint at every seq that is
a multiple of ``checkpoint_every``, all in one commit; each checkpoint names the one signed
before it (``prev_seq``), and a log from before that gains the column on open. The interval
is recorded in the log when it is created (a log without it was written with the default)
and that one is used, whatever ``open`` is given. WAL journal, ``synchronous=FULL``: a
committed batch survives a power cut; batching amortises the fsync. One writer at a time;
several processes may share a log, since each batch continues from the head it locked, and
each checkpoint from the last one signed.

Nothing is signed that a valid checkpoint does not already vouch for (``guard``): ``open``
refuses a log whose records since its last valid checkpoint do not chain to its head (or
that lacks a checkpoint it must have), and a batch or ``checkpoint`` that finds the log so
rewritten meanwhile still writes its records but signs nothing more, and says so in an
error logged once per checkpoint left unsigned; ``verify`` then shows those as missing. The
check reads the records only when the stored head is not one this store wrote on a checked
chain (another process appended, or the file was edited), so a lone writer pays it on open.
"""

from __future__ import annotations

import logging
import sqlite3
import time as _time
from pathlib import Path
from typing import TYPE_CHECKING, Final

from bastion._sqlite import open_private_db
from bastion.audit.chain import GENESIS, Chain
from bastion.audit.checkpoint import (
    DEFAULT_CHECKPOINT_EVERY,
    INTERVAL_KEY,
    MAX_CHECKPOINT_EVERY,
    parse_interval,
    sign_checkpoint,
)
from bastion.audit.guard import unsigned_tail_problem
from bastion.audit.keys import load_or_create_signing_key
from bastion.audit.read import lenient_text, stored_interval
from bastion.audit.record import AuditRecord, encode_bounded
from bastion.errors import InternalError

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from bastion._types import Clock

__all__ = ["DEFAULT_CHECKPOINT_EVERY", "SCHEMA_VERSION", "AuditStore", "AuditStoreError"]

SCHEMA_VERSION: Final = 2  # 2: checkpoints.prev_seq (NULL in rows written by version 1)
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


logger = logging.getLogger(__name__)


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
        self._path = db_path
        self._key = load_or_create_signing_key(db_path)
        self._public_key = self._key.public_key()
        self._every = checkpoint_every
        self._wall = wall_clock
        self._unsignable: str | None = None  # why this log must not be signed any more
        # A stored head (seq, hash) known to chain from a valid checkpoint: checked by
        # ``guard``, or written by this store on top of one that was. A stored head equal to
        # it needs no check (a chain that verifies and ends in that hash is the one checked).
        self._vouched: tuple[int, bytes] | None = None
        self._chain = self._load()

    @classmethod
    def open(
        cls,
        db_path: Path,
        *,
        checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY,
        wall_clock: Clock = _time.time,
    ) -> AuditStore:
        """Open or create the database (directory 0700, file 0600) and its signing key.
        ``checkpoint_every`` (1..``MAX_CHECKPOINT_EVERY``) applies to a new log only.

        Raises:
            AuditStoreError: the stored head does not match the last record, or the records
                since the last valid checkpoint do not chain to it (see ``guard``).
            ConfigError: the signing key is unusable (see ``keys``).
        """
        if not 1 <= checkpoint_every <= MAX_CHECKPOINT_EVERY:
            raise ValueError(f"checkpoint_every must be from 1 to {MAX_CHECKPOINT_EVERY}")
        conn = open_private_db(db_path, busy_timeout=BUSY_TIMEOUT_S)
        conn.text_factory = lenient_text  # an edited row must not fail its read
        try:
            conn.executescript(_SCHEMA)
            _migrate(conn, checkpoint_every)
            return cls(conn, db_path, checkpoint_every=checkpoint_every, wall_clock=wall_clock)
        except BaseException:
            conn.close()
            raise

    @property
    def seq(self) -> int:
        """The last seq written (0 if the log is empty)."""
        return self._chain.seq

    def _load(self) -> Chain:
        """The log's interval and head, read in one transaction (another process may be
        appending), and the check that its unsigned records may be signed."""
        self._conn.execute("BEGIN")
        try:
            every = parse_interval(stored_interval(self._conn))
            if every is None:
                raise self._refusal("its recorded checkpoint interval is not 1 to 1000")
            self._every = every
            head = self._conn.execute("SELECT seq, hash FROM head WHERE id = 1").fetchone()
            last = self._conn.execute(
                "SELECT seq, hash FROM records ORDER BY seq DESC LIMIT 1"
            ).fetchone()
            chain = _head_of(head, last)
            problem = unsigned_tail_problem(self._conn, self._public_key, self._every, chain)
            if problem is not None:
                raise self._refusal(problem)
            self._vouched = (chain.seq, chain.head)
            return chain
        finally:
            self._conn.execute("ROLLBACK")

    def _refusal(self, problem: str) -> AuditStoreError:
        return AuditStoreError(
            f"the audit log {self._path} was changed behind Bastion's back ({problem}); "
            "Bastion will not sign it. Run `bastion audit verify "
            f"--db {self._path}` to see what changed, and move the log aside to start a new one"
        )

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
            start = (chain.seq, chain.head)
            # Checked before this batch extends it, and only when the batch is due to sign.
            crosses = (chain.seq + len(bodies)) // self._every > chain.seq // self._every
            signable = not crosses or self._may_sign(chain)
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
                if signable:
                    self._write_checkpoint(seq, signed)
                else:
                    self._log_unsigned(seq)
        if start == self._vouched:  # these links are ours, on a chain already checked
            self._vouched = (chain.seq, chain.head)
        self._chain = chain
        return chain.seq

    def checkpoint(self) -> None:
        """Sign the stored head unless it is already signed (called on close)."""
        with self._transaction():
            # The stored head, not ours: another process may have appended since, and
            # checkpoints must be signed in seq order to chain.
            chain = self._stored_head()
            if chain.seq <= self._last_checkpoint():
                return
            if self._may_sign(chain):
                self._write_checkpoint(chain.seq, chain.head)
            else:
                self._log_unsigned(chain.seq)

    def _may_sign(self, stored: Chain) -> bool:
        """Whether the stored chain up to ``stored`` may be signed (see ``guard``; no check
        when it is the head this store vouches for); once it may not, this store signs
        nothing more."""
        head = (stored.seq, stored.head)
        if self._unsignable is None and head != self._vouched:
            self._unsignable = unsigned_tail_problem(
                self._conn, self._public_key, self._every, stored
            )
        if self._unsignable is not None:
            return False
        self._vouched = head
        return True

    def _log_unsigned(self, seq: int) -> None:
        assert self._unsignable is not None
        why = self._refusal(self._unsignable).detail
        logger.error("audit checkpoint at seq %d not signed: %s", seq, why)

    def close(self) -> None:
        self._conn.close()

    def _stored_head(self) -> Chain:
        # ``open`` checked that the head matches the last record; appends move both at once.
        head = self._conn.execute("SELECT seq, hash FROM head WHERE id = 1").fetchone()
        if head is None:
            return Chain(0, GENESIS)
        chain = _chain(head)
        if chain is None:
            raise AuditStoreError(f"the audit head ({_named(head)}) is not a seq and a hash")
        return chain

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


def _head_of(head: tuple[object, object] | None, last: tuple[object, object] | None) -> Chain:
    """The stored head, which must be the last record's seq and hash (or both absent).

    Raises:
        AuditStoreError: they differ, or the head is not a seq and a hash.
    """
    if head is None and last is None:
        return Chain(0, GENESIS)
    chain = _chain(head)
    if chain is None or last is None or tuple(head or ()) != tuple(last):
        raise AuditStoreError(
            f"the audit head ({_named(head)}) does not match the last record "
            f"({_named(last)}); run `bastion audit verify` before writing more"
        )
    return chain


def _chain(head: tuple[object, object] | None) -> Chain | None:
    """A stored (seq, hash) row as a ``Chain``; None if it is not one."""
    if head is None:
        return None
    seq, hash_hex = head
    if not (isinstance(seq, int) and seq >= 0 and isinstance(hash_hex, str)):
        return None
    try:
        return Chain(seq, bytes.fromhex(hash_hex))
    except ValueError:
        return None


def _named(row: tuple[object, object] | None) -> str:
    """A stored (seq, hash) row for a message: the seq if it is one (the rest was edited)."""
    if row is None:
        return "none"
    return f"seq {row[0]}" if isinstance(row[0], int) else "unreadable"


def _migrate(conn: sqlite3.Connection, checkpoint_every: int) -> None:
    """Record the schema version and the checkpoint interval (``checkpoint_every`` for a
    new log, the default for one written before the interval was recorded); bring a
    version-1 log to version 2 (its checkpoints keep ``prev_seq`` NULL: they were signed
    unchained, and verify says so)."""
    with _Transaction(conn):  # several processes may open an old log at once
        conn.execute(
            "INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
        )
        written = conn.execute("SELECT 1 FROM records LIMIT 1").fetchone() is not None
        every = DEFAULT_CHECKPOINT_EVERY if written else checkpoint_every
        conn.execute("INSERT OR IGNORE INTO meta VALUES (?, ?)", (INTERVAL_KEY, str(every)))
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
