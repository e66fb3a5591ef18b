"""The audit record: one typed, structured event (AD-1), and its canonical bytes.

A record names who (principal, credential id, never a secret), what (method, target), the
policy decision and its rule, and how it ended (outcome, latency). ``canonical_bytes`` is the
one encoding the hash chain covers: msgspec JSON with every mapping's keys sorted, so the same
record always hashes the same, whichever process wrote it.
"""

from __future__ import annotations

from typing import Annotated, Final, Literal

import msgspec

from bastion._types import JSONObject

__all__ = ["AuditRecord", "Decision", "EventKind", "canonical_bytes", "decode_record"]

Decision = Literal["allow", "deny"]
EventKind = Literal["request", "authentication", "admin", "policy", "pin"]

_Name = Annotated[str, msgspec.Meta(max_length=512)]


class AuditRecord(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One audited event; ``outcome`` is ``"ok"`` or an error code such as ``"-32602"``."""

    time: float
    """Wall-clock seconds since the epoch (the one place Bastion uses wall time)."""
    kind: EventKind = "request"
    principal: _Name | None = None
    credential_id: _Name | None = None
    session: _Name | None = None
    request_id: int | _Name | None = None
    method: _Name = ""
    target: _Name | None = None
    decision: Decision = "allow"
    rule_id: _Name | None = None
    outcome: _Name = "ok"
    latency_ms: float = 0.0
    detail: JSONObject = msgspec.field(default_factory=dict)


_ENCODER: Final = msgspec.json.Encoder(order="sorted")
_DECODER: Final = msgspec.json.Decoder(AuditRecord)


def canonical_bytes(record: AuditRecord) -> bytes:
    """The bytes the hash chain covers: JSON, keys sorted at every depth, no whitespace."""
    return _ENCODER.encode(record)


def decode_record(data: bytes | str) -> AuditRecord:
    """Parse a stored record.

    Raises:
        msgspec.ValidationError, msgspec.DecodeError: the bytes are not a valid record.
    """
    return _DECODER.decode(data)
