"""``verify``'s pass over the checkpoints (AD-2): which stored ones verify with the public
key, breaks in their own chain (each signs the seq of the one before it), and a checkpoint
kept elsewhere that the log must still hold."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bastion.audit.checkpoint import Checkpoint, verify_checkpoint
from bastion.audit.read import checkpoint_rows, parse_checkpoint

if TYPE_CHECKING:
    import sqlite3

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from bastion.audit.findings import Findings

__all__ = ["SignedCheckpoints", "add_kept"]


class SignedCheckpoints:
    """The checkpoint rows: those whose signature verifies, by seq, and the count of old,
    unchained ones; bad signatures and breaks in the checkpoints' own chain become findings."""

    def __init__(
        self, conn: sqlite3.Connection, public_key: Ed25519PublicKey, found: Findings
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


def _check_link(checkpoint: Checkpoint, before: int, chained: bool, found: Findings) -> None:
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


def add_kept(
    kept: Checkpoint,
    public_key: Ed25519PublicKey,
    signed: SignedCheckpoints,
    checkpoints: dict[int, Checkpoint],
    found: Findings,
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
