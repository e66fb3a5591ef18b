"""``verify``: check an audit database end to end against the checkpoint public key (AD-2).

It recomputes every link from the stored bytes and reports, by seq, each record that was
edited (hash mismatch or unreadable), removed (a gap or a broken link), and truncation (the
stored head or a signed checkpoint names records that are not there, or an empty log's file
shows freed pages). Checkpoint signatures are checked with the public key only; each names
the one before it, so a removed checkpoint shows at the next, and one must be at every
multiple of the log's checkpoint interval (the writer signs it in the same commit as that
record), so rewriting the whole chain after deleting them all shows too. What no file can
show is its tail cut back to an earlier consistent state: ``kept``, a checkpoint exported
earlier and kept elsewhere, must then still be in the log. Records after the last checkpoint
are protected by the chain and the unsigned head alone; a clean close always signs the head.
Everything is read in one transaction, so a log a gateway is writing is checked as it was
when verify began. Memory stays bounded: rows are streamed and at most ``MAX_PROBLEMS``
problems are kept. A row of the wrong type is a finding at its seq, never an exception.
"""

from __future__ import annotations

import re
import sqlite3
from typing import TYPE_CHECKING, Final

import msgspec

from bastion.audit.chain import GENESIS, link_hash
from bastion.audit.checkpoint import MAX_CHECKPOINT_EVERY, Checkpoint, parse_interval
from bastion.audit.findings import Findings, Problem, ProblemKind
from bastion.audit.read import (
    StoredRow,
    UnreadableRow,
    iter_rows,
    open_readonly,
    snapshot,
    stored_interval,
)
from bastion.audit.record import decode_record
from bastion.audit.verify_checkpoints import SignedCheckpoints, add_kept

if TYPE_CHECKING:
    from pathlib import Path

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

__all__ = ["Problem", "ProblemKind", "VerifyReport", "verify"]

_MAX_DETAIL: Final = 200  # characters of a decode error quoted in a problem


class VerifyReport(msgspec.Struct, frozen=True, kw_only=True):
    """``ok`` is True only if no problem was found; ``problems`` is capped at MAX_PROBLEMS."""

    records: int
    last_seq: int
    checkpoints: int
    last_checkpoint_seq: int
    problems: tuple[Problem, ...]
    more_problems: bool = False
    unchained_checkpoints: int = 0
    """Checkpoints signed before checkpoints were chained: removing one of them is not seen."""

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(
    db_path: Path, public_key: Ed25519PublicKey, *, kept: Checkpoint | None = None
) -> VerifyReport:
    """Verify the audit database at ``db_path``; ``kept``: a checkpoint exported from it
    earlier, which the log must still hold.

    Raises:
        FileNotFoundError: there is no database at ``db_path``.
        sqlite3.DatabaseError: the file is not an audit database at all.
    """
    conn = open_readonly(db_path)
    try:
        with snapshot(conn):
            return _verify(conn, public_key, kept)
    finally:
        conn.close()


def _verify(
    conn: sqlite3.Connection, public_key: Ed25519PublicKey, kept: Checkpoint | None
) -> VerifyReport:
    found = Findings()
    every = _interval(conn, found)
    signed = SignedCheckpoints(conn, public_key, found)
    checkpoints = dict(signed.valid)
    if kept is not None:
        add_kept(kept, public_key, signed, checkpoints, found)
    head = _head(conn, found)
    chain = _RecordPass(checkpoints, found)
    for row in iter_rows(conn):
        chain.take(row)
    last_seq = chain.expected_seq - 1
    if head is not None:
        _check_head(head, last_seq, chain.prev, found)
    elif last_seq and not found.has(None, "no-head"):
        found.add(None, "no-head", "the stored head is missing")
    for seq in sorted(s for s in checkpoints if s > last_seq):
        found.add(
            seq, "truncated", f"a signed checkpoint names seq {seq}; the log ends at {last_seq}"
        )
    _require_checkpoints(signed, every, last_seq, found)
    if not chain.count:
        _check_emptied(conn, found)
    return VerifyReport(
        records=chain.count,
        last_seq=last_seq,
        checkpoints=len(signed.valid),
        last_checkpoint_seq=max(signed.valid, default=0),
        problems=tuple(found.items),
        more_problems=found.overflow,
        unchained_checkpoints=signed.unchained,
    )


class _RecordPass:
    """The chain, one stored row at a time: each link recomputed from the stored bytes."""

    def __init__(self, checkpoints: dict[int, Checkpoint], found: Findings) -> None:
        self._checkpoints = checkpoints
        self._found = found
        self.count = 0
        self.expected_seq = 1
        self.prev: bytes | None = GENESIS  # the last row's hash (None: not known)
        self._prev_hex = GENESIS.hex()

    def take(self, row: StoredRow | UnreadableRow) -> None:
        found, seq = self._found, row.seq
        if seq is None or seq < 1:  # seqs start at 1; nothing chains to these
            what = "a row with no integer seq" if seq is None else "a row before seq 1"
            found.add(seq, "edited", f"{what}, where the log never writes one")
            return
        self.count += 1
        if seq != self.expected_seq:
            first = self.expected_seq
            gone = f"record {first} is" if seq == first + 1 else f"records {first}..{seq - 1} are"
            found.add(first, "missing", f"{gone} missing (next is {seq})")
        self.expected_seq = seq + 1
        if isinstance(row, UnreadableRow):
            found.add(seq, "unreadable", row.reason)
            self._continue_from(row.hash, None)
            return
        # The common case first: the row links to the one before (no hex to check).
        base = self.prev if self.prev is not None and row.prev == self._prev_hex else None
        if base is None:
            if self.prev is not None:
                found.add(seq, "broken-link", "its previous-hash does not match the record before")
            base = _hash_or(row.prev, self.prev) or GENESIS  # is the row itself intact?
        body = bytes(row.record)
        computed = link_hash(base, seq, body)
        computed_hex = computed.hex()
        intact = computed_hex == row.hash
        if not intact:
            found.add(seq, "edited", "its contents do not match its stored hash")
        try:
            decode_record(body)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            found.add(seq, "unreadable", f"not a valid audit record ({_cut(str(exc))})")
        checkpoint = self._checkpoints.get(seq)
        if checkpoint is not None and checkpoint.hash != computed:
            found.add(seq, "edited", "this or an earlier record differs from what was signed")
        if intact:
            self.prev, self._prev_hex = computed, computed_hex
        else:  # from the stored hash: an edited body is one finding, not one per later row
            self._continue_from(row.hash, computed)

    def _continue_from(self, stored: str | None, computed: bytes | None) -> None:
        self.prev = _hash_or(stored, computed)
        self._prev_hex = "" if self.prev is None else self.prev.hex()


_HEX_HASH: Final = re.compile("[0-9a-f]{64}")


def _hash_or(text: str | None, default: bytes | None) -> bytes | None:
    """``text`` as a hash if it is one (64 lowercase hex digits), else ``default``."""
    if text is not None and _HEX_HASH.fullmatch(text):
        return bytes.fromhex(text)
    return default


def _cut(text: str) -> str:
    return text if len(text) <= _MAX_DETAIL else f"{text[:_MAX_DETAIL]}..."


def _interval(conn: sqlite3.Connection, found: Findings) -> int:
    """The log's checkpoint interval (see ``checkpoint.parse_interval``); the largest one
    allowed, and a finding, when what is recorded is not one."""
    stored = stored_interval(conn)
    if stored is None:
        return MAX_CHECKPOINT_EVERY  # a log from before the interval was recorded
    every = parse_interval(stored)
    if every is None:
        found.add(
            None,
            "edited",
            f"the recorded checkpoint interval is not a whole number from 1 to "
            f"{MAX_CHECKPOINT_EVERY} (checked as {MAX_CHECKPOINT_EVERY})",
        )
        return MAX_CHECKPOINT_EVERY
    return every


def _head(conn: sqlite3.Connection, found: Findings) -> tuple[int, str] | None:
    """The stored head; None, and a finding if the row is there, when it is not a seq and
    a hash."""
    row = conn.execute("SELECT seq, hash FROM head WHERE id = 1").fetchone()
    if row is None:
        return None
    seq, hash_hex = row
    if isinstance(seq, int) and isinstance(hash_hex, str):
        return seq, hash_hex
    found.add(
        None,
        "no-head",
        f"the stored head is unreadable (its seq is {type(seq).__name__}, its hash "
        f"{type(hash_hex).__name__})",
    )
    return None


def _check_head(
    head: tuple[int, str], last_seq: int, last_hash: bytes | None, found: Findings
) -> None:
    head_seq, head_hash = head
    if head_seq > last_seq:
        found.add(
            last_seq + 1,
            "truncated",
            f"the head names seq {head_seq}; records {last_seq + 1}..{head_seq} are gone",
        )
    elif head_seq < last_seq:
        found.add(head_seq + 1, "edited", f"records after the head (seq {head_seq}) were added")
    elif last_hash is None or head_hash != last_hash.hex():
        found.add(head_seq, "edited", "the last record's hash does not match the stored head")


def _require_checkpoints(
    signed: SignedCheckpoints, every: int, last_seq: int, found: Findings
) -> None:
    """A valid checkpoint at every multiple of ``every`` up to ``last_seq``."""
    for seq in range(every, last_seq + 1, every):
        if seq in signed.valid:
            continue
        if found.full:
            found.overflow = True
            return
        if not (found.has(seq, "missing-checkpoint") or found.has(seq, "bad-checkpoint")):
            found.add(
                seq,
                "missing-checkpoint",
                f"no valid signed checkpoint here (the log signs one every {every} records)",
            )


def _check_emptied(conn: sqlite3.Connection, found: Findings) -> None:
    """A log with no records that was never written to has no free pages: nothing is ever
    deleted through Bastion, so freed pages mean rows were (a VACUUM hides it; ``kept`` not)."""
    freed = conn.execute("PRAGMA freelist_count").fetchone()[0]
    if freed:
        found.add(
            None, "truncated", f"the log holds no records, but {freed} pages of it were freed"
        )
