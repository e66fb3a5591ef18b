"""Signed checkpoints (AD-2): an Ed25519 signature over (seq, hash, time) of the chain head
and ``prev_seq``, the seq of the checkpoint signed before it (0 for the first), so the
checkpoints form a chain of their own and removing one shows at the next. Checkpoints written
before that (v1, ``prev_seq`` None) were signed without it and still verify, unchained.

Why Ed25519 rather than HMAC: verifying needs only the public key, so an auditor (or a
pinned copy off the host) can check the log without holding anything that could forge it;
an HMAC key that verifies can also sign. Signing costs tens of microseconds and happens
once per ``checkpoint_every`` records and on close, not per record. The interval is recorded
in the log (``meta``, key ``checkpoint_every``) when the log is created, and a log without it
was written with the default; it is at most ``MAX_CHECKPOINT_EVERY``, so whoever edits the
record cannot make ``verify`` expect fewer checkpoints than the writer signs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Final

import msgspec
from cryptography.exceptions import InvalidSignature

from bastion.audit.keys import key_id

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

__all__ = [
    "DEFAULT_CHECKPOINT_EVERY",
    "INTERVAL_KEY",
    "MAX_CHECKPOINT_EVERY",
    "Checkpoint",
    "decode_checkpoint",
    "encode_checkpoint",
    "parse_interval",
    "sign_checkpoint",
    "verify_checkpoint",
]

DEFAULT_CHECKPOINT_EVERY: Final = 1000
MAX_CHECKPOINT_EVERY: Final = DEFAULT_CHECKPOINT_EVERY
INTERVAL_KEY: Final = "checkpoint_every"  # its name in the log's meta table

_DOMAIN_V1: Final = b"bastion-audit-checkpoint-v1\x00"
_DOMAIN: Final = b"bastion-audit-checkpoint-v2\x00"


class Checkpoint(msgspec.Struct, frozen=True, kw_only=True):
    """The chain head at ``seq`` (``hash``), signed at wall time ``time`` by key ``key_id``,
    after the checkpoint at ``prev_seq`` (None: an unchained v1 checkpoint)."""

    seq: int
    hash: bytes
    time: float
    key_id: str
    signature: bytes
    prev_seq: int | None = None


def _message(seq: int, head: bytes, time: float, kid: str, prev_seq: int | None) -> bytes:
    fields: dict[str, object] = {"hash": head.hex(), "key_id": kid, "seq": seq, "time": time}
    if prev_seq is None:
        return _DOMAIN_V1 + msgspec.json.encode(fields, order="sorted")
    return _DOMAIN + msgspec.json.encode({**fields, "prev_seq": prev_seq}, order="sorted")


def parse_interval(stored: object) -> int | None:
    """The checkpoint interval a log's meta table holds (text, as the store writes it); None
    when it is not a whole number from 1 to ``MAX_CHECKPOINT_EVERY``."""
    if not (
        isinstance(stored, str) and 0 < len(stored) <= 8 and stored.isascii() and stored.isdigit()
    ):
        return None
    every = int(stored)
    return every if 1 <= every <= MAX_CHECKPOINT_EVERY else None


def sign_checkpoint(
    key: Ed25519PrivateKey, seq: int, head: bytes, time: float, *, prev_seq: int | None = None
) -> Checkpoint:
    """Sign the head at ``seq``; the store always passes ``prev_seq`` (None signs the old,
    unchained form, as logs written before chaining hold)."""
    kid = key_id(key.public_key())
    signature = key.sign(_message(seq, head, time, kid, prev_seq))
    return Checkpoint(
        seq=seq, hash=head, time=time, key_id=kid, signature=signature, prev_seq=prev_seq
    )


def verify_checkpoint(public_key: Ed25519PublicKey, checkpoint: Checkpoint) -> bool:
    """True if ``checkpoint`` was signed by ``public_key`` and is unaltered."""
    cp = checkpoint
    message = _message(cp.seq, cp.hash, cp.time, cp.key_id, cp.prev_seq)
    try:
        public_key.verify(checkpoint.signature, message)
    except InvalidSignature:
        return False
    return True


class _Kept(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A checkpoint as exported to be kept off the host: hex like the database holds it."""

    seq: Annotated[int, msgspec.Meta(ge=1)]
    hash: Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{64}$")]
    time: float
    key_id: Annotated[str, msgspec.Meta(max_length=64)]
    signature: Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{128}$")]
    prev_seq: Annotated[int, msgspec.Meta(ge=0)] | None = None


_KEPT_DECODER: Final = msgspec.json.Decoder(_Kept)


def encode_checkpoint(checkpoint: Checkpoint) -> bytes:
    """``checkpoint`` as one JSON object, for ``decode_checkpoint`` to read back."""
    cp = checkpoint
    kept = _Kept(
        seq=cp.seq,
        hash=cp.hash.hex(),
        time=cp.time,
        key_id=cp.key_id,
        signature=cp.signature.hex(),
        prev_seq=cp.prev_seq,
    )
    return msgspec.json.encode(kept)


def decode_checkpoint(data: bytes) -> Checkpoint:
    """Read what ``encode_checkpoint`` wrote (the signature is not checked here).

    Raises:
        ValueError: ``data`` is not such a checkpoint (msgspec's errors are ValueErrors).
    """
    kept = _KEPT_DECODER.decode(data)
    return Checkpoint(
        seq=kept.seq,
        hash=bytes.fromhex(kept.hash),
        time=kept.time,
        key_id=kept.key_id,
        signature=bytes.fromhex(kept.signature),
        prev_seq=kept.prev_seq,
    )
