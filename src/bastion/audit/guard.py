"""The writer's check before it signs (AD-2): the records since the last valid checkpoint
chain, link by link, from what that checkpoint signed up to the stored head.

A checkpoint signs whatever chain it is given, so the writer must not sign one that was
rewritten behind Bastion's back (checkpoints deleted, records edited and re-chained, the head
fixed to match): that would turn a forgery ``verify`` can see into a signed log it cannot.
``unsigned_tail_problem`` finds the highest checkpoint at or below the head whose signature
verifies with the writer's key. It must be at or after the last multiple of the log's
checkpoint interval (the writer signs one there in the same commit as that record, so a log
it wrote always has one), and the records after it must chain to the head. That is at most
``every`` records, read on open and before a checkpoint is signed on a head the store did not
write itself on a checked one (another process's, or an edit's), never per record.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

from bastion.audit.chain import GENESIS, link_hash
from bastion.audit.checkpoint import verify_checkpoint
from bastion.audit.read import UnreadableRow, checkpoint_rows, iter_rows, parse_checkpoint

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from bastion.audit.chain import Chain

__all__ = ["unsigned_tail_problem"]


def unsigned_tail_problem(
    conn: sqlite3.Connection, public_key: Ed25519PublicKey, every: int, head: Chain
) -> str | None:
    """Why the stored chain up to ``head`` (the stored head) must not be signed, or None
    when it may: it continues, unbroken, a checkpoint signed with ``public_key``. Call it
    inside a transaction, so that the rows it reads are the ones about to be signed."""
    beyond = conn.execute("SELECT max(seq) FROM checkpoints").fetchone()[0]
    if isinstance(beyond, int) and beyond > head.seq:
        return (
            f"a checkpoint names seq {beyond}, after the head (seq {head.seq}): "
            "records were removed"
        )
    floor = head.seq - head.seq % every  # the last seq that must have a checkpoint (0: none)
    anchor_seq, anchor_hash = 0, GENESIS
    for row in reversed(checkpoint_rows(conn, seqs=(max(floor, 1), head.seq))):
        checkpoint = parse_checkpoint(row)
        if checkpoint is not None and verify_checkpoint(public_key, checkpoint):
            anchor_seq, anchor_hash = checkpoint.seq, checkpoint.hash
            break
    else:
        if floor:
            return f"no checkpoint at seq {floor} verifies with the audit key"
    return _chain_problem(conn, anchor_seq, anchor_hash, head)


def _chain_problem(
    conn: sqlite3.Connection, anchor_seq: int, anchor_hash: bytes, head: Chain
) -> str | None:
    """Whether the records from ``anchor_seq`` (whose stored hash must be ``anchor_hash``;
    0: genesis) link to ``head``."""
    expected, prev = anchor_seq + 1, anchor_hash
    anchored = anchor_seq == 0
    for row in iter_rows(conn, after=max(anchor_seq - 1, 0)):
        if row.seq is None or row.seq > head.seq:
            break
        if isinstance(row, UnreadableRow):
            return f"the record at seq {row.seq} is unreadable"
        if row.seq == anchor_seq:  # the record the checkpoint signed
            if row.hash != anchor_hash.hex():
                return f"the record at seq {row.seq} differs from what its checkpoint signed"
            anchored = True
            continue
        if not anchored:
            return f"the record at seq {anchor_seq}, which a checkpoint signed, is missing"
        if row.seq != expected:
            return f"record {expected} is missing"
        if row.prev != prev.hex():
            return f"the record at seq {row.seq} does not link to the record before it"
        prev = link_hash(prev, row.seq, bytes(row.record))
        if prev.hex() != row.hash:
            return f"the record at seq {row.seq} does not match its stored hash"
        expected += 1
    if not anchored or expected - 1 != head.seq or prev != head.head:
        return f"the records do not chain to the head (seq {head.seq})"
    return None
