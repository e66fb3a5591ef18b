"""The hash chain (AD-2): each record's hash covers its seq, its canonical bytes and the hash
of the record before it, so editing, removing or reordering any record breaks every later link.

Pure code: no I/O. ``link_hash`` is the single definition of a link; the writer and the verifier
both call it. Seqs start at 1; record 1 links to ``GENESIS`` (32 zero bytes).
"""

from __future__ import annotations

import hashlib
from typing import Final

import msgspec

__all__ = ["GENESIS", "Chain", "Link", "link_hash"]

GENESIS: Final = bytes(32)
_DOMAIN: Final = b"bastion-audit-link-v1\x00"
_SEEDED: Final = hashlib.sha256(_DOMAIN)  # copied per link (never updated): cheaper than anew


def link_hash(prev: bytes, seq: int, body: bytes) -> bytes:
    """SHA-256 over a domain tag, the previous hash, the seq (8 bytes, big-endian) and ``body``."""
    digest = _SEEDED.copy()
    digest.update(prev)
    digest.update(seq.to_bytes(8, "big"))
    digest.update(body)
    return digest.digest()


class Link(msgspec.Struct, frozen=True, kw_only=True):
    """One chained record: ``body`` is the record's canonical bytes."""

    seq: int
    prev: bytes
    hash: bytes
    body: bytes


class Chain:
    """The running head of a chain; ``append`` extends it by one record."""

    def __init__(self, seq: int = 0, head: bytes = GENESIS) -> None:
        if seq < 0 or len(head) != len(GENESIS):
            raise ValueError("a chain head is a seq >= 0 and a 32-byte hash")
        self.seq = seq
        self.head = head

    def append(self, body: bytes) -> Link:
        seq = self.seq + 1
        link = Link(seq=seq, prev=self.head, hash=link_hash(self.head, seq, body), body=body)
        self.seq, self.head = seq, link.hash
        return link
