"""Reading the audit database: read-only connections, stored rows in seq order, JSON lines.

Readers open the file with ``mode=ro`` so nothing they do can change it, and fetch rows in
pages of ``PAGE`` so memory stays bounded however long the log is. Export writes one JSON
object per line: ``{"seq", "prev", "hash", "record"}``, the record as the exact stored bytes.
Checkpoint rows come as stored too, with ``prev_seq`` None in a log from before chaining.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import IO, TYPE_CHECKING, Final

import msgspec

from bastion.audit.checkpoint import Checkpoint

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = [
    "CheckpointRow",
    "StoredRow",
    "checkpoint_rows",
    "export_jsonl",
    "iter_rows",
    "open_readonly",
    "parse_checkpoint",
    "tail_rows",
]

PAGE: Final = 1000
BUSY_TIMEOUT_S: Final = 5.0


class StoredRow(msgspec.Struct, frozen=True, kw_only=True):
    """One row of the records table as stored; ``record`` is the raw canonical JSON."""

    seq: int
    prev: str
    hash: str
    record: msgspec.Raw


def open_readonly(db_path: Path) -> sqlite3.Connection:
    """A read-only connection.

    Raises:
        FileNotFoundError: there is no database at ``db_path``.
    """
    if not db_path.is_file():
        raise FileNotFoundError(db_path)
    return sqlite3.connect(
        f"{db_path.resolve().as_uri()}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_S
    )


def _row(values: tuple[int, str, str, str]) -> StoredRow:
    seq, prev, hash_, record = values
    return StoredRow(seq=seq, prev=prev, hash=hash_, record=msgspec.Raw(record.encode()))


def iter_rows(conn: sqlite3.Connection, after: int = 0) -> Iterator[StoredRow]:
    """Rows with seq > ``after``, in seq order, fetched a page at a time."""
    while True:
        page = conn.execute(
            "SELECT seq, prev, hash, record FROM records WHERE seq > ? ORDER BY seq LIMIT ?",
            (after, PAGE),
        ).fetchall()
        for values in page:
            yield _row(values)
        if len(page) < PAGE:
            return
        after = page[-1][0]


def tail_rows(conn: sqlite3.Connection, n: int) -> list[StoredRow]:
    """The last ``n`` rows, oldest first."""
    page = conn.execute(
        "SELECT seq, prev, hash, record FROM records ORDER BY seq DESC LIMIT ?", (max(n, 0),)
    ).fetchall()
    return [_row(values) for values in reversed(page)]


# seq, hash, time, key_id, signature, prev_seq: as stored, unchecked.
CheckpointRow = tuple[int, object, object, object, object, object]


def checkpoint_rows(conn: sqlite3.Connection, *, last: bool = False) -> list[CheckpointRow]:
    """Every checkpoint row in seq order (``last``: only the highest seq). A version-1 log
    has no ``prev_seq`` column: its rows read as None there."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(checkpoints)")}
    prev = "prev_seq" if "prev_seq" in columns else "NULL"
    order = "DESC LIMIT 1" if last else ""
    return conn.execute(
        f"SELECT seq, hash, time, key_id, signature, {prev} FROM checkpoints "  # noqa: S608
        f"ORDER BY seq {order}"
    ).fetchall()


def parse_checkpoint(row: CheckpointRow) -> Checkpoint | None:
    """A stored checkpoint row as a ``Checkpoint`` (signature unchecked); None if malformed."""
    seq, hash_hex, time, kid, signature, prev_seq = row
    if not (
        isinstance(hash_hex, str)
        and isinstance(time, (int, float))
        and isinstance(kid, str)
        and isinstance(signature, str)
        and (prev_seq is None or isinstance(prev_seq, int))
    ):
        return None
    try:
        return Checkpoint(
            seq=seq,
            hash=bytes.fromhex(hash_hex),
            time=float(time),
            key_id=kid,
            signature=bytes.fromhex(signature),
            prev_seq=prev_seq,
        )
    except ValueError:
        return None


_ENCODER: Final = msgspec.json.Encoder()


def export_jsonl(conn: sqlite3.Connection, out: IO[bytes]) -> int:
    """Write every row to ``out`` as JSON lines; return how many."""
    count = 0
    for row in iter_rows(conn):
        out.write(_ENCODER.encode(row) + b"\n")
        count += 1
    return count
