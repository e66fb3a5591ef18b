"""``verify``: check an audit database end to end against the checkpoint public key (AD-2).

It recomputes every link from the stored bytes and reports, by seq, each record that was
edited (hash mismatch or unreadable), removed (a gap or a broken link), and truncation (the
stored head or a signed checkpoint names records that are not there, or an empty log's file
shows freed pages). Checkpoint signatures are checked with the public key only, and each names
the one before it, so a removed checkpoint shows at the next. What no file can show is its
tail cut back to an earlier consistent state: ``kept``, a checkpoint exported earlier and kept
elsewhere, must then still be in the log. Records after the last checkpoint are protected by
the chain and the unsigned head alone; a clean close always signs the head. Memory stays
bounded: rows are streamed and at most ``MAX_PROBLEMS`` problems are kept.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Final, Literal

import msgspec

from bastion.audit.chain import GENESIS, link_hash
from bastion.audit.checkpoint import Checkpoint, verify_checkpoint
from bastion.audit.read import checkpoint_rows, iter_rows, open_readonly, parse_checkpoint
from bastion.audit.record import decode_record

if TYPE_CHECKING:
    from pathlib import Path

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

__all__ = ["Problem", "ProblemKind", "VerifyReport", "verify"]

MAX_PROBLEMS: Final = 100

ProblemKind = Literal[
    "edited",
    "unreadable",
    "missing",
    "broken-link",
    "truncated",
    "bad-checkpoint",
    "missing-checkpoint",
    "no-head",
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
    unchained_checkpoints: int = 0
    """Checkpoints signed before checkpoints were chained: removing one of them is not seen."""

    @property
    def ok(self) -> bool:
        return not self.problems


class _Findings:
    def __init__(self) -> None:
        self.items: list[Problem] = []
        self.overflow = False

    def has(self, seq: int | None, kind: ProblemKind) -> bool:
        return any(p.seq == seq and p.kind == kind for p in self.items)

    def add(self, seq: int | None, kind: ProblemKind, message: str) -> None:
        if len(self.items) < MAX_PROBLEMS:
            self.items.append(Problem(seq=seq, kind=kind, message=message))
        else:
            self.overflow = True


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
        return _verify(conn, public_key, kept)
    finally:
        conn.close()


def _verify(
    conn: sqlite3.Connection, public_key: Ed25519PublicKey, kept: Checkpoint | None
) -> VerifyReport:
    found = _Findings()
    signed = _Checkpoints(conn, public_key, found)
    checkpoints = dict(signed.valid)
    if kept is not None:
        _add_kept(kept, public_key, signed, checkpoints, found)
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
    if not count:
        _check_emptied(conn, found)
    return VerifyReport(
        records=count,
        last_seq=last_seq,
        checkpoints=len(signed.valid),
        last_checkpoint_seq=max(signed.valid, default=0),
        problems=tuple(found.items),
        more_problems=found.overflow,
        unchained_checkpoints=signed.unchained,
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


def _check_emptied(conn: sqlite3.Connection, found: _Findings) -> None:
    """A log with no records that was never written to has no free pages: nothing is ever
    deleted through Bastion, so freed pages mean rows were (a VACUUM hides it; ``kept`` not)."""
    freed = conn.execute("PRAGMA freelist_count").fetchone()[0]
    if freed:
        found.add(
            None, "truncated", f"the log holds no records, but {freed} pages of it were freed"
        )


class _Checkpoints:
    """The checkpoint rows: those whose signature verifies, by seq, and the count of old,
    unchained ones; bad signatures and breaks in the checkpoints' own chain become findings."""

    def __init__(
        self, conn: sqlite3.Connection, public_key: Ed25519PublicKey, found: _Findings
    ) -> None:
        self.valid: dict[int, Checkpoint] = {}
        self.stored: set[int] = set()
        self.unchained = 0
        before, chained = 0, False  # the seq of the row before, and whether one was chained
        for row in checkpoint_rows(conn):
            seq, kid, prev_seq = row[0], row[3], row[5]
            self.stored.add(seq)
            checkpoint = parse_checkpoint(row)
            if checkpoint is None:
                found.add(seq, "bad-checkpoint", "the checkpoint row is malformed")
            elif not verify_checkpoint(public_key, checkpoint):
                found.add(seq, "bad-checkpoint", f"the signature does not verify (key id {kid})")
            else:
                self.valid[seq] = checkpoint
                _check_link(checkpoint, before, chained, found)
                self.unchained += checkpoint.prev_seq is None
            chained = chained or prev_seq is not None
            before = seq


def _check_link(checkpoint: Checkpoint, before: int, chained: bool, found: _Findings) -> None:
    """``checkpoint`` (signature verified) against the checkpoint row before it, at ``before``
    (0: none)."""
    seq, prev_seq = checkpoint.seq, checkpoint.prev_seq
    if prev_seq is None:
        if chained:
            found.add(seq, "bad-checkpoint", "unchained (old form) after chained checkpoints")
    elif prev_seq > before:
        found.add(
            prev_seq,
            "missing-checkpoint",
            f"the signed checkpoint at seq {prev_seq} is gone (the one at seq {seq} follows it)",
        )
    elif prev_seq < before:
        found.add(
            seq,
            "bad-checkpoint",
            f"signed after the checkpoint at seq {prev_seq}, but follows the one at seq {before}",
        )


def _add_kept(
    kept: Checkpoint,
    public_key: Ed25519PublicKey,
    signed: _Checkpoints,
    checkpoints: dict[int, Checkpoint],
    found: _Findings,
) -> None:
    """Hold the log to ``kept``: its signature, its presence, and (in the record pass and the
    truncation check, through ``checkpoints``) the records it signed."""
    if not verify_checkpoint(public_key, kept):
        found.add(kept.seq, "bad-checkpoint", "the kept checkpoint does not verify with this key")
        return
    ours = signed.valid.get(kept.seq)
    if ours is not None and ours.hash != kept.hash:
        found.add(kept.seq, "edited", "the log's checkpoint here differs from the kept one")
    if kept.seq not in signed.stored and not found.has(kept.seq, "missing-checkpoint"):
        found.add(kept.seq, "missing-checkpoint", "the kept checkpoint is gone from the log")
    checkpoints[kept.seq] = kept
