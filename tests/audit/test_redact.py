"""Secret redaction before anything is written (AD-3)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.audit import AuditLog, AuditRecord, Redactor, redact_text
from bastion.audit.redact import (
    _MAYBE_SECRET,
    MAX_DEPTH,
    REDACTED,
    _alternation,
    _fold,
    _maybe_secret,
)

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("key AKIAIOSFODNN7EXAMPLE here", "AKIAIOSFODNN7EXAMPLE"),
        ("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "wJalrXUtnFEMI"),
        ("AIzaSyA1234567890abcdefghijklmnopqrstuv", "AIzaSyA1234567890"),
        ("ghp_0123456789abcdefghijABCDEFGHIJ012345", "ghp_0123456789"),
        ("xoxb-123456789012-abcdefABCDEF", "xoxb-123456789012"),
        ("sk_live_0123456789abcdefABCD", "sk_live_0123456789"),
        ("sk-ant-api03-abcdefghijklmnopqrstuvwxyz", "sk-ant-api03"),
        ("Authorization: Bearer eyJhbGciOi.eyJzdWIiOiIx.sig-nature", "eyJhbGciOi"),
        ("Authorization: Bearer abc123def456ghi", "abc123def456ghi"),
        ("Authorization: Basic dXNlcjpwYXNz", "dXNlcjpwYXNz"),
        ("postgres://bob:hunter2@db.internal:5432/app", "hunter2"),
        ("https://api.example/v1?access_token=s3cr3t&page=2", "s3cr3t"),
        (
            "DefaultEndpointsProtocol=https;AccountKey=abcdefghijklmnopqrstuvwxyz0123==;",
            "abcdefghij",
        ),
        (
            "x\n-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk=\n"
            "-----END OPENSSH PRIVATE KEY-----\ny",
            "b3BlbnNzaC1rZXk",
        ),
        ("-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg (cut off)", "MIIEvQIBADANBg"),
    ],
)
def test_ad3_obvious_secrets_are_masked(text: str, secret: str) -> None:
    redacted = redact_text(text)
    assert secret not in redacted
    assert REDACTED in redacted


@pytest.mark.parametrize(
    "text",
    [
        "basic authentication failed",
        "bearer of bad news",
        "https://example.com/path?page=2",
        "user@example.com wrote 1234 lines",
        "the token expired",
    ],
)
def test_ad3_ordinary_text_is_left_alone(text: str) -> None:
    assert redact_text(text) == text


def test_ad3_url_keeps_user_and_host() -> None:
    assert redact_text("redis://app:pw@cache:6379/0") == f"redis://app:{REDACTED}@cache:6379/0"


def test_ad3_configured_and_default_fields_are_masked_whole() -> None:
    redact = Redactor(["query", "X-Internal-Ref"])
    value = {
        "Password": {"nested": "structure"},
        "api_key": 12345,
        "client-secret": "a",
        "query": "select * from salaries",
        "x_internal_ref": "r",
        "path": "/tmp/a",
        "items": [{"token": "t"}, "Bearer abcdef123456"],
    }
    assert redact(value) == {
        "Password": REDACTED,
        "api_key": REDACTED,
        "client-secret": REDACTED,
        "query": REDACTED,
        "x_internal_ref": REDACTED,
        "path": "/tmp/a",
        "items": [{"token": REDACTED}, f"Bearer {REDACTED}"],
    }
    assert value["query"] == "select * from salaries"  # the input is not modified


def test_ad3_defaults_can_be_replaced() -> None:
    assert Redactor(["only"], include_defaults=False)({"password": "p", "only": "o"}) == {
        "password": "p",
        "only": REDACTED,
    }


def test_ad3_depth_is_bounded() -> None:
    deep: object = "leaf"
    for _ in range(MAX_DEPTH + 50):
        deep = [deep]
    out = Redactor()(deep)
    for _ in range(MAX_DEPTH):
        assert isinstance(out, list)
        out = out[0]
    assert out == "[TOO DEEP]"


async def test_ad3_secrets_in_detail_never_reach_the_database_files(tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    secrets = ["hunter2-PASSWORD", "AKIAIOSFODNN7EXAMPLE", "tok3n-XYZ-987654", "sql-SECRET-QUERY"]
    async with AuditLog(db, redactor=Redactor(["sql"])) as log:
        await log.record(
            AuditRecord(
                time=1.0,
                method="tools/call",
                detail={
                    "arguments": {
                        "password": secrets[0],
                        "note": f"use {secrets[1]}",
                        "sql": secrets[3],
                    },
                    "headers": [f"Authorization: Bearer {secrets[2]}"],
                },
            )
        )
        await log.flush()
        assert log.seq == 1
    written = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("audit.db"))
    assert b"tools/call" in written  # the record itself is there
    for secret in secrets:
        assert secret.encode() not in written


@pytest.mark.parametrize("unit", ["x", "a.b", "Bearer a", "eyJaaaaa.", "a://b:", "?token="])
def test_ad3_redaction_stays_linear_on_hostile_strings(unit: str) -> None:
    """A quadratic pattern took 6 s on 64 KiB of letters; 1 MiB must take well under that."""
    import time

    text = unit * (1_048_576 // len(unit))
    started = time.perf_counter()
    redact_text(text)
    assert time.perf_counter() - started < 3.0


async def test_ad1_a_secret_passed_as_credential_id_or_target_is_masked(tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    async with AuditLog(db) as log:
        await log.record(
            AuditRecord(
                time=1.0,
                credential_id="ghp_0123456789abcdefghijABCDEFGHIJ012345",
                target="https://files.example/report?sig=SIGNATURE123",
            )
        )
    written = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("audit.db"))
    assert b"ghp_0123456789" not in written and b"SIGNATURE123" not in written
    assert b"files.example/report?sig=[REDACTED]" in written


_NEEDLE_PARTS = (
    *_MAYBE_SECRET,
    *(w[: len(w) // 2] for w in _MAYBE_SECRET),
    "\u017f",
    "\u212a",
    "\u0131",
    "\u0130",
    "A",
    " ",
)


@settings(max_examples=500, deadline=None)
@given(
    text=st.one_of(
        st.lists(st.sampled_from(_NEEDLE_PARTS), max_size=12).map("".join),
        st.text(alphabet="".join(sorted(set("".join(_NEEDLE_PARTS)))), max_size=60),
        st.text(max_size=60),
    )
)
def test_ad3_prefilter_lets_through_every_text_holding_a_word_it_looks_for(text: str) -> None:
    """The one-regex prefilter says "maybe a secret" exactly when the folded text holds one
    of its words (so no text skips the patterns that one of them would have sent there);
    folded: case-folded, and U+0131/U+0130, which IGNORECASE matches to "i", made "i"."""
    expected = any(word in _fold(text) for word in _MAYBE_SECRET)
    assert _maybe_secret(text) is expected
    assert _maybe_secret(text.upper()) is any(w in _fold(text.upper()) for w in _MAYBE_SECRET)
    assert _fold(text) == text.casefold().replace("\u0131", "i").replace("\u0307", "")


@settings(max_examples=300, deadline=None)
@given(
    words=st.lists(st.text(alphabet="ab?", min_size=1, max_size=4), min_size=1, max_size=6),
    text=st.text(alphabet="ab?c", max_size=12),
)
def test_the_factored_alternation_finds_exactly_its_words(words: list[str], text: str) -> None:
    """Also for words that are prefixes of others (none of the prefilter's are, today)."""
    pattern = re.compile(_alternation(words))
    assert (pattern.search(text) is not None) is any(word in text for word in words)
    assert all(pattern.fullmatch(word) for word in words)
