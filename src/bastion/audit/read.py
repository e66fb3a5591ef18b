"""Reading the audit database: read-only connections, stored rows in seq order, JSON lines.

Readers open the file with ``mode=ro`` so nothing they do can change it, and fetch rows in
pages of ``PAGE`` so memory stays bounded however long the log is; ``snapshot`` holds one
read transaction, so that what a reader sees across pages is one state of a log another
process is writing (WAL). Rows come in seq order from the lowest stored, seqs below 1 too
(the writer never makes them). A row whose columns are not the text the writer stores (a
blob, a NULL, a number, bytes that are not UTF-8: only an edit behind Bastion's back makes
one) comes as an ``UnreadableRow`` naming its seq, never as an exception. Export writes one
JSON object per line: ``{"seq", "prev", "hash", "record"}``, the record as the exact stored
bytes. Checkpoint rows come as stored too, with ``prev_seq`` None in a log from before
chaining.
"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path
from typing import IO, TYPE_CHECKING, Final

import msgspec

from bastion.audit.checkpoint import INTERVAL_KEY, Checkpoint

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = [
    "CheckpointRow",
    "StoredRow",
    "UnreadableRow",
    "checkpoint_rows",
    "export_jsonl",
    "iter_rows",
    "lenient_text",
    "open_readonly",
    "parse_checkpoint",
    "snapshot",
    "stored_interval",
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


class UnreadableRow(msgspec.Struct, frozen=True, kw_only=True):
    """A row whose columns are not all text (``reason`` says which); ``hash`` is its stored
    hash when that one is text, for a verifier to continue the chain from. ``seq`` is None
    only in a records table rebuilt without its integer key."""

    seq: int | None
    reason: str
    hash: str | None


Row = StoredRow | UnreadableRow


def open_readonly(db_path: Path) -> sqlite3.Connection:
    """A read-only connection.

    Raises:
        FileNotFoundError: there is no database at ``db_path``.
    """
    if not db_path.is_file():
        raise FileNotFoundError(db_path)
    conn = sqlite3.connect(
        f"{db_path.resolve().as_uri()}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_S
    )
    # Text that is not UTF-8 (an edit) reads with U+FFFD, so it fails the checks it is put
    # to instead of failing the whole read.
    conn.text_factory = lenient_text
    return conn


def lenient_text(data: bytes) -> str:
    """A ``text_factory`` that never raises: bytes that are not UTF-8 read as U+FFFD."""
    return data.decode(errors="replace")


@contextlib.contextmanager
def snapshot(conn: sqlite3.Connection) -> Iterator[None]:
    """One read transaction on ``conn``: every read inside sees the same committed state,
    whatever a writer commits meanwhile."""
    conn.execute("BEGIN")
    try:
        yield
    finally:
        if conn.in_transaction:  # SQLite may have ended it already, on an I/O error
            conn.execute("ROLLBACK")


# Each column as bytes, and its storage class where it is not text (NULL where it is, so
# the common row costs no Python call): a blob, or text that is not UTF-8, must not raise in
# the middle of a page (sqlite3 would, decoding it as str).
_COLUMNS: Final = (
    "SELECT seq, nullif(typeof(prev), 'text'), CAST(prev AS BLOB), "
    "nullif(typeof(hash), 'text'), CAST(hash AS BLOB), "
    "nullif(typeof(record), 'text'), CAST(record AS BLOB) FROM records"
)
_RawRow = tuple[
    object, str | None, bytes | None, str | None, bytes | None, str | None, bytes | None
]


def _row(values: _RawRow) -> Row:
    seq, prev_kind, prev, hash_kind, hash_, record_kind, record = values
    if not isinstance(seq, int):  # a records table rebuilt without its INTEGER PRIMARY KEY
        return UnreadableRow(seq=None, reason=f"a seq is stored as {seq!r}", hash=None)
    hash_text = None if hash_kind or hash_ is None else hash_.decode(errors="replace")
    if prev_kind or hash_kind or record_kind:
        wrong = (
            f"its {name} is stored as {kind}, not text"
            for name, kind in (
                ("previous-hash", prev_kind),
                ("hash", hash_kind),
                ("record", record_kind),
            )
            if kind
        )
        return UnreadableRow(seq=seq, reason="; ".join(wrong), hash=hash_text)
    assert prev is not None and record is not None and hash_text is not None
    try:
        record.decode()  # the writer stores text; JSON (and an export's line) is UTF-8
    except UnicodeDecodeError:
        return UnreadableRow(seq=seq, reason="its record is not UTF-8 text", hash=hash_text)
    return StoredRow(
        seq=seq,
        prev=prev.decode(errors="replace"),
        hash=hash_text,
        record=msgspec.Raw(record),
    )


def iter_rows(conn: sqlite3.Connection, after: int | None = None) -> Iterator[Row]:
    """Rows with seq > ``after`` (None: every row), in seq order, fetched a page at a time."""
    where, arg = ("", ()) if after is None else (" WHERE seq > ?", (after,))
    return _pages(conn, where, arg)


def tail_rows(conn: sqlite3.Connection, n: int) -> Iterator[Row]:
    """The last ``n`` rows, oldest first, fetched a page at a time."""
    if n <= 0:
        return iter(())
    first = conn.execute(
        "SELECT seq FROM records ORDER BY seq DESC LIMIT 1 OFFSET ?", (min(n, 2**62) - 1,)
    ).fetchone()
    if first is None:  # fewer than n rows: all of them
        return _pages(conn, "", ())
    return _pages(conn, " WHERE seq >= ?", (first[0],))


def _pages(conn: sqlite3.Connection, where: str, args: tuple[object, ...]) -> Iterator[Row]:
    sql = f"{_COLUMNS}{where} ORDER BY seq LIMIT {PAGE}"
    while True:
        page = conn.execute(sql, args).fetchall()
        for values in page:
            yield _row(values)
        if len(page) < PAGE:
            return
        sql = f"{_COLUMNS} WHERE seq > ? ORDER BY seq LIMIT {PAGE}"
        args = (page[-1][0],)


# seq, hash, time, key_id, signature, prev_seq: as stored, unchecked.
CheckpointRow = tuple[int, object, object, object, object, object]


def checkpoint_rows(
    conn: sqlite3.Connection, *, last: bool = False, seqs: tuple[int, int] | None = None
) -> list[CheckpointRow]:
    """Every checkpoint row in seq order (``last``: only the highest seq; ``seqs``: only
    those from the first to the second, both included). A version-1 log has no
    ``prev_seq`` column: its rows read as None there."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(checkpoints)")}
    prev = "prev_seq" if "prev_seq" in columns else "NULL"
    where = "" if seqs is None else "WHERE seq BETWEEN ? AND ? "
    order = "DESC LIMIT 1" if last else ""
    return conn.execute(
        f"SELECT seq, hash, time, key_id, signature, {prev} FROM checkpoints "  # noqa: S608
        f"{where}ORDER BY seq {order}",
        () if seqs is None else seqs,
    ).fetchall()


def stored_interval(conn: sqlite3.Connection) -> object:
    """The checkpoint interval recorded in the log, as stored (None: not recorded; see
    ``checkpoint.parse_interval``)."""
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (INTERVAL_KEY,)).fetchone()
    return None if row is None else row[0]


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


def export_jsonl(conn: sqlite3.Connection, out: IO[bytes]) -> tuple[int, list[UnreadableRow]]:
    """Write every readable row to ``out`` as JSON lines, in one snapshot; return how many,
    and the rows left out as unreadable (at most ``PAGE`` of them are kept)."""
    count, unreadable = 0, list[UnreadableRow]()
    with snapshot(conn):
        for row in iter_rows(conn):
            if isinstance(row, UnreadableRow):
                if len(unreadable) < PAGE:
                    unreadable.append(row)
                continue
            out.write(_ENCODER.encode(row) + b"\n")
            count += 1
    return count, unreadable
