"""``bounded`` and ``encode_bounded``: every name and id capped before it is written (AD-2)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.audit import AuditRecord, canonical_bytes
from bastion.audit.record import MAX_NAME_LENGTH, bounded, encode_bounded

_NAME = st.one_of(
    st.none(),
    st.text(max_size=40),
    st.builds(
        lambda head, n, tail: head + "v" * n + tail,
        st.text(max_size=8),
        st.integers(MAX_NAME_LENGTH - 60, MAX_NAME_LENGTH + 60),
        st.sampled_from(("", "\ud800", "é\x00", "ghp_" + "a1B2" * 9)),
    ),
    st.sampled_from(("\ud800", "a\udfffb")),
)
_RECORDS = st.builds(
    AuditRecord,
    time=st.floats(allow_nan=True),
    principal=_NAME,
    credential_id=_NAME,
    session=_NAME,
    request_id=st.one_of(st.integers(), _NAME),
    target=_NAME,
    rule_id=_NAME,
    detail=st.dictionaries(st.text(max_size=5), st.text(max_size=300), max_size=3),
)


@settings(max_examples=400, deadline=None)
@given(record=_RECORDS)
def test_ad2_encode_bounded_is_bounded_then_canonical_bytes(record: AuditRecord) -> None:
    """One encoding when the record is short, and the same record and bytes as the two steps
    (or the same error: a lone surrogate in a kept part cannot be encoded)."""
    try:
        expected: object = (bounded(record), canonical_bytes(bounded(record)))
    except UnicodeEncodeError:
        expected = UnicodeEncodeError
    try:
        got: object = encode_bounded(record)
    except UnicodeEncodeError:
        got = UnicodeEncodeError
    assert got == expected


def test_ad2_a_surrogate_in_the_part_cut_away_does_not_stop_the_record() -> None:
    long = "v" * (MAX_NAME_LENGTH + 10) + "\ud800"
    record, body = encode_bounded(AuditRecord(time=1.0, target=long))
    assert record.target is not None and len(record.target) == MAX_NAME_LENGTH
    assert f"truncated: {len(long)} chars".encode() in body
