"""Property tests of ``LineFramer``, the stdio framing (SECURITY.md VT-2, DS-4).

Any chunking of a byte stream yields the lines of splitting it at once; a line over the cap
becomes exactly one ``OVERSIZED`` marker and framing resumes at the next line; the framer
never buffers more than the cap.
"""

from __future__ import annotations

import itertools

from hypothesis import example, given, settings
from hypothesis import strategies as st

from bastion.transport.lines import OVERSIZED, LineFramer

FAST = settings(derandomize=True, database=None, deadline=None, max_examples=250)

_PIECES = st.sampled_from([b"x", b"{}", b" ", b"\t", b"\r", b"\r\r", b"\x00", b"\xff", OVERSIZED])


@st.composite
def streams(draw: st.DrawFn) -> tuple[bytes, int]:
    """(stream, cap): lines of assorted lengths around the cap, with CR, blanks and NUL."""
    cap = draw(st.integers(1, 24))
    lines = []
    for _ in range(draw(st.integers(0, 8))):
        size = draw(st.integers(0, cap * 3))
        body = b"".join(draw(st.lists(_PIECES, max_size=size)))
        lines.append(body + draw(st.sampled_from([b"", b"\r", b"\r\r"])))
    tail = draw(st.binary(max_size=cap * 2).map(lambda b: b.replace(b"\n", b"")))
    return b"\n".join(lines) + (b"\n" if lines else b"") + tail, cap


def reference(stream: bytes, cap: int) -> list[bytes]:
    """Split at once: complete lines only, CRs trimmed, blank lines skipped, long ones marked."""
    out: list[bytes] = []
    for raw in stream.split(b"\n")[:-1]:
        if len(raw) > cap:
            out.append(OVERSIZED)
        elif raw.rstrip(b"\r").strip():
            out.append(raw.rstrip(b"\r"))
    return out


def feed_chunked(stream: bytes, cuts: list[int], cap: int) -> list[bytes]:
    framer = LineFramer(cap)
    out: list[bytes] = []
    bounds = [0, *sorted({c % (len(stream) + 1) for c in cuts}), len(stream)]
    for start, end in itertools.pairwise(bounds):
        out.extend(framer.feed(stream[start:end]))
        assert len(framer._buf) <= cap  # DS-4: never more than the cap held
    return out


def _same(got: list[bytes], want: list[bytes]) -> None:
    assert got == want
    # The marker is the constant itself; a peer's line that spells it is not the marker.
    assert [g is OVERSIZED for g in got] == [w is OVERSIZED for w in want]


@FAST
@given(case=streams(), cuts=st.lists(st.integers(0, 10_000), max_size=12))
def test_any_chunking_gives_the_lines_of_splitting_at_once_VT2(
    case: tuple[bytes, int], cuts: list[int]
) -> None:
    stream, cap = case
    want = reference(stream, cap)
    _same(feed_chunked(stream, [], cap), want)
    _same(feed_chunked(stream, cuts, cap), want)


@FAST
@given(case=streams())
def test_byte_at_a_time_matches_splitting_at_once(case: tuple[bytes, int]) -> None:
    stream, cap = case
    _same(feed_chunked(stream, list(range(len(stream))), cap), reference(stream, cap))


@FAST
@given(
    cap=st.integers(1, 64),
    excess=st.integers(1, 500),
    cuts=st.lists(st.integers(0, 10_000), max_size=20),
    after=st.text("ab{}", min_size=1, max_size=20).map(str.encode),
)
@example(cap=3, excess=1, cuts=[3], after=b"ok")
def test_oversized_line_is_one_marker_then_framing_resumes_DS4(
    cap: int, excess: int, cuts: list[int], after: bytes
) -> None:
    stream = b"y" * (cap + excess) + b"\n" + after[:cap] + b"\n"
    got = feed_chunked(stream, cuts, cap)
    assert len(got) == 2
    assert got[0] is OVERSIZED
    assert got[1] == after[:cap]


@FAST
@given(cap=st.integers(1, 64), extra=st.integers(0, 3))
def test_line_at_exactly_the_cap_is_kept(cap: int, extra: int) -> None:
    line = b"z" * cap
    framer = LineFramer(cap)
    assert framer.feed(line + b"\n" + b"\n" * extra) == [line]
    assert framer.feed(line + b"z\n") == [OVERSIZED]


@settings(FAST, max_examples=30)
@given(chunks=st.lists(st.integers(1, 4096), min_size=1, max_size=40))
def test_unterminated_flood_is_never_buffered_beyond_the_cap_DS4(chunks: list[int]) -> None:
    framer = LineFramer(1000)
    for size in chunks:
        assert framer.feed(b"a" * size) == []
        assert len(framer._buf) <= 1000
    first = OVERSIZED if sum(chunks) > 1000 else b"a" * sum(chunks)
    assert framer.feed(b"\n{}\n") == [first, b"{}"]
