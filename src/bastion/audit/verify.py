"""``verify``: check an audit database end to end against the checkpoint public key (AD-2).

It recomputes every link from the stored bytes and reports, by seq, each record that was
edited (hash mismatch or unreadable), removed (a gap or a broken link), and truncation (the
stored head or a signed checkpoint names records that are not there). Checkpoint signatures are
checked with the public key only. Records after the last checkpoint are protected by the chain
and the unsigned head alone; a clean close always signs the head. Memory stays bounded:
rows are streamed and at most ``MAX_PROBLEMS`` problems are kept.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Final, Literal

import msgspec

from bastion.audit.chain import GENESIS, link_hash
from bastion.audit.checkpoint import Checkpoint, verify_checkpoint
from bastion.audit.read import iter_rows, open_readonly
from bastion.audit.record import decode_record

if TYPE_CHECKING:
    from pathlib import Path

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

__all__ = ["Problem", "ProblemKind", "VerifyReport", "verify"]

MAX_PROBLEMS: Final = 100

ProblemKind = Literal[
    "edited", "unreadable", "missing", "broken-link", "truncated", "bad-checkpoint", "no-head"
]


class Problem(msgspec.Struct, frozen=True, kw_only=True):
    seq: int | None
    kind: ProblemKind
    message: str

    def __str__(self) -> str:
        where = "" if self.seq is None else f"seq {self.seq}: "
        return f"{where}{self.kind}: {self.message}"


class VerifyReport(msgspec.Struct, frozen=True, kw_only=True):
    """``ok`` is True only if no problem was found; ``problems`` is capped at MAX_PROBLEMS."""

    records: int
    last_seq: int
    checkpoints: int
    last_checkpoint_seq: int
    problems: tuple[Problem, ...]
    more_problems: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems


class _Findings:
    def __init__(self) -> None:
        self.items: list[Problem] = []
        self.overflow = False

    def add(self, seq: int | None, kind: ProblemKind, message: str) -> None:
        if len(self.items) < MAX_PROBLEMS:
            self.items.append(Problem(seq=seq, kind=kind, message=message))
        else:
            self.overflow = True


def verify(db_path: Path, public_key: Ed25519PublicKey) -> VerifyReport:
    """Verify the audit database at ``db_path``.

    Raises:
        FileNotFoundError: there is no database at ``db_path``.
        sqlite3.DatabaseError: the file is not an audit database at all.
    """
    conn = open_readonly(db_path)
    try:
        return _verify(conn, public_key)
    finally:
        conn.close()


def _verify(conn: sqlite3.Connection, public_key: Ed25519PublicKey) -> VerifyReport:
    found = _Findings()
    checkpoints = _checkpoints(conn, public_key, found)
    head = conn.execute("SELECT seq, hash FROM head WHERE id = 1").fetchone()
    expected_seq, prev, count = 1, GENESIS, 0
    for row in iter_rows(conn):
        count += 1
        if row.seq != expected_seq:
            gone = (
                f"record {expected_seq} is"
                if row.seq == expected_seq + 1
                else f"records {expected_seq}..{row.seq - 1} are"
            )
            found.add(expected_seq, "missing", f"{gone} missing (next is {row.seq})")
        if row.prev != prev.hex():
            found.add(row.seq, "broken-link", "its previous-hash does not match the record before")
        body = bytes(row.record)
        computed = link_hash(bytes.fromhex(row.prev) if _is_hash(row.prev) else prev, row.seq, body)
        if computed.hex() != row.hash:
            found.add(row.seq, "edited", "its contents do not match its stored hash")
        try:
            decode_record(body)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            found.add(row.seq, "unreadable", f"not a valid audit record ({exc})")
        checkpoint = checkpoints.get(row.seq)
        if checkpoint is not None and checkpoint.hash != computed:
            found.add(row.seq, "edited", "this or an earlier record differs from what was signed")
        # Continue from the stored hash: an edited body is one finding, not one per later row.
        expected_seq = row.seq + 1
        prev = bytes.fromhex(row.hash) if _is_hash(row.hash) else computed
    last_seq = expected_seq - 1
    _check_head(head, last_seq, prev, found)
    for seq in sorted(s for s in checkpoints if s > last_seq):
        found.add(
            seq, "truncated", f"a signed checkpoint names seq {seq}; the log ends at {last_seq}"
        )
    return VerifyReport(
        records=count,
        last_seq=last_seq,
        checkpoints=len(checkpoints),
        last_checkpoint_seq=max(checkpoints, default=0),
        problems=tuple(found.items),
        more_problems=found.overflow,
    )


def _is_hash(text: str) -> bool:
    return len(text) == 64 and all(c in "0123456789abcdef" for c in text)


def _check_head(
    head: tuple[int, str] | None, last_seq: int, last_hash: bytes, found: _Findings
) -> None:
    if head is None:
        if last_seq:
            found.add(None, "no-head", "the stored head is missing")
        return
    head_seq, head_hash = head
    if head_seq > last_seq:
        found.add(
            last_seq + 1,
            "truncated",
            f"the head names seq {head_seq}; records {last_seq + 1}..{head_seq} are gone",
        )
    elif head_seq < last_seq:
        found.add(head_seq + 1, "edited", f"records after the head (seq {head_seq}) were added")
    elif head_hash != last_hash.hex():
        found.add(head_seq, "edited", "the last record's hash does not match the stored head")


def _checkpoints(
    conn: sqlite3.Connection, public_key: Ed25519PublicKey, found: _Findings
) -> dict[int, Checkpoint]:
    """Checkpoints whose signature verifies, by seq; the others become findings."""
    valid: dict[int, Checkpoint] = {}
    rows = conn.execute("SELECT seq, hash, time, key_id, signature FROM checkpoints ORDER BY seq")
    for seq, hash_hex, time, kid, signature in rows:
        try:
            checkpoint = Checkpoint(
                seq=seq,
                hash=bytes.fromhex(hash_hex),
                time=time,
                key_id=kid,
                signature=bytes.fromhex(signature),
            )
        except (ValueError, TypeError):
            found.add(seq, "bad-checkpoint", "the checkpoint row is malformed")
            continue
        if verify_checkpoint(public_key, checkpoint):
            valid[seq] = checkpoint
        else:
            found.add(seq, "bad-checkpoint", f"the signature does not verify (key id {kid})")
    return valid
