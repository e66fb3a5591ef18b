"""What ``AuditLog`` chains for a record is fixed (AD-1, AD-2, AD-3): the exact bytes that
``_prepare`` makes of a varied set of records (secrets, control characters, over-long names,
lone surrogates, non-finite numbers, huge and deep details) are pinned here, as digests of the
outputs of the implementation before the twelfth session's speed-ups; and the fast path of
``_prepare`` is checked against the plain composition of its steps on generated records."""

from __future__ import annotations

import hashlib
import math
import random
from pathlib import Path

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.audit import AuditLog, AuditRecord, Redactor, canonical_bytes, redact_text
from bastion.audit.log import MAX_RECORD_BYTES
from bastion.audit.record import MAX_NAME_LENGTH, NAME_FIELDS, bounded

_SECRETS = (
    "ghp_" + "a1B2" * 9,
    "AKIAIOSFODNN7EXAMPLE",
    "Bearer abc123def456ghi",
    "postgres://bob:hunter2@db.internal:5432/app",
    "https://api.example/v1?access_token=s3cr3t&page=2",
    "sk-ant-api03-abcdefghijklmnopqrstuvwxyz",
    "eyJhbGciOi.eyJzdWIiOiIx.sig-nature",
)
_NAMES = ("key:abc", "fx__echo", "tools/call", "", "ok", "-32602", "ünïcødé ✓", "sess-0123")


def _text(rng: random.Random, short: bool = False) -> str:
    """A name or string value: short, secret-bearing, control characters, or over-long (not
    when ``short``: most real records have only short names)."""
    kind = rng.randrange(5 if short else 12)
    if kind == 0:
        return rng.choice(_NAMES)
    if kind == 1:
        return f"x{rng.choice(_SECRETS)}/{rng.randrange(1000)}"
    if kind == 2:
        return "".join(chr(rng.randrange(0, 0x30)) for _ in range(rng.randrange(1, 40)))
    if kind == 3:
        return '\u2028\x7f"\\' * rng.randrange(1, 8)
    if kind == 4:
        return f"call-{rng.randrange(10**6)}"
    if kind in (5, 6):  # over the bound, the cut landing anywhere, a secret across it sometimes
        head = "v" * rng.randrange(300, 520)
        return head + rng.choice(("", *_SECRETS)) + "w" * rng.randrange(0, 300)
    if kind == 7:
        return "h" * rng.choice((MAX_NAME_LENGTH, MAX_NAME_LENGTH + 1, 100_000))
    if kind == 8 and rng.random() < 0.3:  # a lone surrogate: cut away past the bound, or not
        return "s" * rng.choice((10, 600)) + "\ud800" + "t" * rng.randrange(3)
    if kind == 9:
        return '\u2028\x7f"\\' * rng.randrange(100, 200)
    return "é" * rng.randrange(100, 700)


def _value(rng: random.Random, depth: int) -> object:
    kind = rng.randrange(8 if depth < 3 else 5)
    if kind == 0:
        return _text(rng)
    if kind == 1:
        return rng.choice((0, 1, -7, 2**40, True, False, None))
    if kind == 2:
        return rng.choice((0.5, 1e300, float("nan"), float("inf"), -0.0))
    if kind == 3:
        return "[REDACTED]"
    if kind == 4:
        return f"is:open label:bug {rng.randrange(10**6)}"
    if kind == 5:
        return [_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    return _detail(rng, depth + 1)


def _detail(rng: random.Random, depth: int = 0) -> dict[str, object]:
    keys = ("findings", "password", "Api-Key", "arguments", "query", "z", "a", "token", "bytes")
    return {rng.choice(keys): _value(rng, depth) for _ in range(rng.randrange(5))}


def _deep(levels: int) -> dict[str, object]:
    detail: dict[str, object] = {"leaf": "AKIAIOSFODNN7EXAMPLE"}
    for _ in range(levels):
        detail = {"n": detail}
    return detail


def _special_details() -> list[dict[str, object]]:
    room = MAX_RECORD_BYTES - 400  # about what fits beside a record's other fields
    return [
        {},
        {"findings": 0},
        {"blob": "x" * (MAX_RECORD_BYTES + 1)},
        {"blob": "x" * room},
        {"blob": "\x01" * (room // 6 + 50)},  # escapes push it over
        {"password": "p" * room, "k": 1},  # over before redaction, under after
        {"blob": ("ghp_" + "a1B2" * 9 + " ") * (room // 42)},
        {"token": {"nested": [1, 2, 3]}, "Authorization": None},
        _deep(31),
        _deep(40),
        {"list": [{"secret": "s"}, ["Bearer abc123def456ghi"], 3.5]},
    ]


def _record(rng: random.Random, i: int) -> AuditRecord:
    short = i % 2 == 1

    def name() -> str | None:
        return None if rng.random() < 0.2 else _text(rng, short)

    specials = _special_details()
    detail = specials[i % len(specials)] if i % 3 == 0 else _detail(rng)
    return AuditRecord(
        time=rng.choice((1_800_000_000.0 + i, float("nan"), float("-inf"), 0.0)),
        kind=rng.choice(("request", "authentication", "admin", "policy", "pin")),
        principal=name(),
        credential_id=name(),
        session=name(),
        request_id=rng.choice((None, i, -1, _text(rng, short))),
        method=_text(rng, short),
        target=name(),
        decision=rng.choice(("allow", "deny")),
        rule_id=name(),
        outcome=_text(rng, short),
        latency_ms=rng.choice((1.234, 0.0, float("nan"), float("inf"), 1e-9)),
        detail=detail,  # type: ignore[arg-type]
    )


def _log(tmp_path: Path, redactor: Redactor | None = None) -> AuditLog:
    """Never opened: ``_prepare`` needs only the redactor and the wall clock."""
    return AuditLog(tmp_path / "audit.db", redactor=redactor, wall_clock=lambda: 1234.5)


def _digest(log: AuditLog, records: list[AuditRecord]) -> str:
    """SHA-256 over every output (length-prefixed), or the error a record raised."""
    digest = hashlib.sha256()
    for record in records:
        try:
            out = log._prepare(record)
        except UnicodeEncodeError:
            out = b"error: UnicodeEncodeError"
        digest.update(len(out).to_bytes(8, "big") + out)
    return digest.hexdigest()


# Outputs of ``_prepare`` at 287b557 (before the twelfth session's changes) for these records,
# with every name and id redacted (AD-3; until the fourteenth session only the principal,
# credential id and target were) and the password of ``postgres://bob:hunter2@...`` masked
# also when hundreds of letters come before the scheme (AD-3; until red team round 14 it
# was stored as sent there): the digests ``_reference`` gives.
_RECORDS = [_record(random.Random(seed), seed) for seed in range(600)]
_EXPECTED_DEFAULT = "49344987652291eb66853903c5e4fa2f713f2ac733a3104aa6b7772ec8c04427"
_EXPECTED_CONFIGURED = "f4aa9332f8da3829b9f7468c2e8b85387f795895dd2f10c495ad1ce60c135ed4"


def test_ad2_ad3_encoded_records_are_byte_for_byte_those_of_the_reference(
    tmp_path: Path,
) -> None:
    assert _digest(_log(tmp_path), _RECORDS) == _EXPECTED_DEFAULT
    configured = _log(tmp_path, Redactor(["query", "bytes", "z"]))
    assert _digest(configured, _RECORDS) == _EXPECTED_CONFIGURED


def _reference(log: AuditLog, redact: Redactor, record: AuditRecord) -> bytes:
    """``_prepare`` as the plain composition of its steps (the code before its fast path)."""
    names = {
        name: redact_text(value)
        for name in NAME_FIELDS
        if isinstance(value := getattr(record, name), str)
    }
    record = bounded(msgspec.structs.replace(record, **names))
    if record.detail:
        record = _cap(record, len(canonical_bytes(record)))
    latency = record.latency_ms if math.isfinite(record.latency_ms) else -1.0
    when = record.time if math.isfinite(record.time) else 1234.5
    record = msgspec.structs.replace(
        record, time=when, detail=redact(record.detail), latency_ms=latency
    )
    body = canonical_bytes(record)
    if len(body) > MAX_RECORD_BYTES:
        body = canonical_bytes(_cap(record, len(body)))
    return body


def _cap(record: AuditRecord, size: int) -> AuditRecord:
    if size <= MAX_RECORD_BYTES:
        return record
    return msgspec.structs.replace(record, detail={"truncated": True, "bytes": size})


@settings(max_examples=300, deadline=None)
@given(seed=st.integers(min_value=0, max_value=2**32), configured=st.booleans())
def test_ad2_ad3_prepare_equals_the_plain_composition_of_its_steps(
    seed: int, configured: bool
) -> None:
    redact = Redactor(["query", "bytes"]) if configured else Redactor()
    log = _log(Path("/nonexistent"), redact)
    record = _record(random.Random(seed), seed)
    try:
        expected: bytes | type[Exception] = _reference(log, redact, record)
    except UnicodeEncodeError:
        expected = UnicodeEncodeError
    try:
        got: bytes | type[Exception] = log._prepare(record)
    except UnicodeEncodeError:
        got = UnicodeEncodeError
    assert got == expected
