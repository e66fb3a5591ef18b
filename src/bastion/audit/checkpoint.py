"""Signed checkpoints (AD-2): an Ed25519 signature over (seq, hash, time) of the chain head.

Why Ed25519 rather than HMAC: verifying needs only the public key, so an auditor (or a
pinned copy off the host) can check the log without holding anything that could forge it;
an HMAC key that verifies can also sign. Signing costs tens of microseconds and happens
once per ``checkpoint_every`` records and on close, not per record.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import msgspec
from cryptography.exceptions import InvalidSignature

from bastion.audit.keys import key_id

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

__all__ = ["Checkpoint", "sign_checkpoint", "verify_checkpoint"]

_DOMAIN: Final = b"bastion-audit-checkpoint-v1\x00"


class Checkpoint(msgspec.Struct, frozen=True, kw_only=True):
    """The chain head at ``seq`` (``hash``), signed at wall time ``time`` by key ``key_id``."""

    seq: int
    hash: bytes
    time: float
    key_id: str
    signature: bytes


def _message(seq: int, head: bytes, time: float, kid: str) -> bytes:
    return _DOMAIN + msgspec.json.encode(
        {"hash": head.hex(), "key_id": kid, "seq": seq, "time": time}, order="sorted"
    )


def sign_checkpoint(key: Ed25519PrivateKey, seq: int, head: bytes, time: float) -> Checkpoint:
    kid = key_id(key.public_key())
    signature = key.sign(_message(seq, head, time, kid))
    return Checkpoint(seq=seq, hash=head, time=time, key_id=kid, signature=signature)


def verify_checkpoint(public_key: Ed25519PublicKey, checkpoint: Checkpoint) -> bool:
    """True if ``checkpoint`` was signed by ``public_key`` and is unaltered."""
    message = _message(checkpoint.seq, checkpoint.hash, checkpoint.time, checkpoint.key_id)
    try:
        public_key.verify(checkpoint.signature, message)
    except InvalidSignature:
        return False
    return True
