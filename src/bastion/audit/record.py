"""The audit record: one typed, structured event (AD-1), and its canonical bytes.

A record names who (principal, credential id, never a secret), what (method, target), the
policy decision and its rule, and how it ended (outcome, latency). ``canonical_bytes`` is the
one encoding the hash chain covers: msgspec JSON with every mapping's keys sorted, so the same
record always hashes the same, whichever process wrote it. Names and ids are capped at
``MAX_NAME_LENGTH`` characters when a record is read back, so ``bounded`` applies the same cap
before one is written: a longer value keeps its head and ends with a marker giving its length
and SHA-256, so the record still shows it was long and can be matched to the original.
``encode_bounded`` does both at once, and skips the field-by-field check when the whole
record encodes to no more than ``MAX_NAME_LENGTH`` bytes (no field can be over then).
"""

from __future__ import annotations

import hashlib
import operator
from typing import Annotated, Final, Literal

import msgspec

from bastion._types import JSONObject

__all__ = [
    "MAX_NAME_LENGTH",
    "NAME_FIELDS",
    "AuditRecord",
    "Decision",
    "EventKind",
    "bound_name",
    "bounded",
    "canonical_bytes",
    "decode_record",
    "encode_bounded",
]

Decision = Literal["allow", "deny"]
EventKind = Literal["request", "authentication", "admin", "policy", "pin"]

MAX_NAME_LENGTH: Final = 512  # characters, for every name and id field (``_Name``)
_Name = Annotated[str, msgspec.Meta(max_length=MAX_NAME_LENGTH)]


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


def _bounded_fields() -> tuple[str, ...]:
    """The fields whose type caps a string's length (all at MAX_NAME_LENGTH), read off the
    type itself so a field added later is bounded too."""
    names = []
    info = msgspec.inspect.type_info(AuditRecord)
    if not isinstance(info, msgspec.inspect.StructType):
        raise TypeError("AuditRecord is a Struct")
    for field in info.fields:
        kinds = field.type.types if isinstance(field.type, msgspec.inspect.UnionType) else ()
        for kind in (*kinds, field.type):
            if isinstance(kind, msgspec.inspect.StrType) and kind.max_length is not None:
                if kind.max_length != MAX_NAME_LENGTH:
                    raise TypeError(f"AuditRecord.{field.name}: bound it with _Name")
                names.append(field.name)
    return tuple(names)


_BOUNDED_FIELDS: Final = _bounded_fields()
_BOUNDED_VALUES: Final = operator.attrgetter(*_BOUNDED_FIELDS)
NAME_FIELDS: Final = _BOUNDED_FIELDS
"""The name and id fields (principal, credential id, session, request id, method, target,
rule id, outcome): each may hold what a client sent, so each is redacted and bounded."""


def bound_name(value: str) -> str:
    """``value`` if it fits MAX_NAME_LENGTH; else its head and ``...[truncated: N chars,
    sha256:HEX]`` (the digest of the whole ``value`` as UTF-8), MAX_NAME_LENGTH in all."""
    if len(value) <= MAX_NAME_LENGTH:
        return value
    digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()
    marker = f"...[truncated: {len(value)} chars, sha256:{digest}]"
    return value[: MAX_NAME_LENGTH - len(marker)] + marker


def bounded(record: AuditRecord) -> AuditRecord:
    """``record`` with every over-long name or id passed through ``bound_name``, so that it
    decodes back whatever a client sent (the record itself when nothing is over)."""
    changes = {
        name: bound_name(value)
        for name, value in zip(_BOUNDED_FIELDS, _BOUNDED_VALUES(record), strict=True)
        if isinstance(value, str) and len(value) > MAX_NAME_LENGTH
    }
    return msgspec.structs.replace(record, **changes) if changes else record


_ENCODER: Final = msgspec.json.Encoder(order="sorted")
_DECODER: Final = msgspec.json.Decoder(AuditRecord)


def canonical_bytes(record: AuditRecord) -> bytes:
    """The bytes the hash chain covers: JSON, keys sorted at every depth, no whitespace."""
    return _ENCODER.encode(record)


def encode_bounded(record: AuditRecord) -> tuple[AuditRecord, bytes]:
    """``bounded(record)`` and its ``canonical_bytes``, with one encoding in the usual case.

    Raises:
        UnicodeEncodeError: a kept part of a string holds a lone surrogate (as
            ``canonical_bytes(bounded(record))`` would).
    """
    try:
        body = _ENCODER.encode(record)
    except UnicodeEncodeError:  # perhaps in a part that bounding cuts away
        body = None
    # Every character encodes to at least one byte: a short record has no long field.
    if body is not None and len(body) <= MAX_NAME_LENGTH:
        return record, body
    cut = bounded(record)
    if cut is record and body is not None:
        return record, body
    return cut, _ENCODER.encode(cut)


def decode_record(data: bytes | str) -> AuditRecord:
    """Parse a stored record.

    Raises:
        msgspec.ValidationError, msgspec.DecodeError: the bytes are not a valid record.
    """
    return _DECODER.decode(data)
