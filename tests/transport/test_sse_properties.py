"""Property tests of the SSE encoder and parser (SECURITY.md VT-2, UP-4, DS-4).

Any chunking of a stream gives the same events; ``encode_event`` then parsing round-trips
data, id, event and retry; an event larger than ``max_event`` is refused with ValueError,
whatever the chunking, so an upstream cannot make the client buffer without limit.
"""

from __future__ import annotations

import itertools
import string

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from bastion.transport.sse import SseEvent, SseParser, encode_event

FAST = settings(derandomize=True, database=None, deadline=None, max_examples=200)

_line_text = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"), max_size=16
)
# Superscripts and non-ASCII decimal digits: str.isdigit() is True for all of them.
_UNICODE_DIGITS = "\u00b2\u00b3\u00b9\u0661\u0662\u0663\u07c0\u0966\u0be7"
_visible = st.text(string.ascii_letters + string.digits + string.punctuation + " ", max_size=12)


@st.composite
def sse_lines(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["data", "data", "id", "event", "retry", "comment", "blank", "x"]))
    if kind == "blank":
        return b""
    if kind == "comment":
        return b":" + draw(_line_text).encode()
    if kind == "retry":
        value = draw(st.integers(0, 10**6).map(str) | st.sampled_from(["", "x1", "-5", " 7"]))
    else:
        value = draw(_line_text)
    sep = draw(st.sampled_from([": ", ":", ":  "]))
    return kind.encode() + sep.encode() + value.encode()


@st.composite
def sse_streams(draw: st.DrawFn) -> bytes:
    lines = draw(st.lists(sse_lines(), max_size=14))
    ends = draw(
        st.lists(st.sampled_from([b"\n", b"\r\n"]), min_size=len(lines), max_size=len(lines))
    )
    return b"".join(line + end for line, end in zip(lines, ends, strict=True))


def feed(parser: SseParser, stream: bytes, cuts: list[int]) -> list[SseEvent]:
    bounds = [0, *sorted({c % (len(stream) + 1) for c in cuts}), len(stream)]
    events: list[SseEvent] = []
    for start, end in itertools.pairwise(bounds):
        events.extend(parser.feed(stream[start:end]))
    return events


@FAST
@given(stream=sse_streams(), cuts=st.lists(st.integers(0, 10_000), max_size=12))
def test_any_chunking_gives_the_same_events_VT2(stream: bytes, cuts: list[int]) -> None:
    whole, chunked, bytewise = SseParser(), SseParser(), SseParser()
    want = whole.feed(stream)
    assert feed(chunked, stream, cuts) == want
    assert feed(bytewise, stream, list(range(len(stream)))) == want
    assert chunked.last_event_id == bytewise.last_event_id == whole.last_event_id


@FAST
@given(
    data=_line_text,
    event_id=st.none() | _visible.filter(lambda s: "\x00" not in s),
    event=st.sampled_from(["message", "ping", "x:y"]) | _visible.filter(bool),
    retry=st.none() | st.integers(0, 10**9 - 1),
    cuts=st.lists(st.integers(0, 10_000), max_size=6),
)
def test_encode_then_parse_round_trips(
    data: str, event_id: str | None, event: str, retry: int | None, cuts: list[int]
) -> None:
    wire = encode_event(data.encode(), event_id=event_id, event=event, retry_ms=retry)
    parser = SseParser()
    events = feed(parser, wire, cuts)
    assert events == [
        SseEvent(data=data, event=event if data else "message", id=event_id, retry=retry)
    ]
    if event_id is not None:
        assert parser.last_event_id == event_id


@FAST
@given(
    value=st.text(string.digits, min_size=1, max_size=6)
    | st.text("0123456789 -+x" + _UNICODE_DIGITS, max_size=6)
)
@example(value="²")  # superscript two: str.isdigit() is True, int() raises ValueError
@example(value="\u0661\u0662")  # Arabic-Indic digits: not ASCII digits, yet taken as retry=12
def test_retry_field_takes_only_ascii_digits(value: str) -> None:
    """WHATWG SSE: ``retry`` is used only when its value consists of ASCII digits alone."""
    events = SseParser().feed(f"retry: {value}\n\n".encode())
    ascii_digits = value != "" and all(c in string.digits for c in value)
    want = int(value) if ascii_digits else None
    assert [e.retry for e in events] == ([want] if want is not None else [])


def test_a_retry_of_more_than_nine_digits_is_ignored_UP4() -> None:
    """A ``retry`` no reader would wait for (10**400 ms) is dropped; the event stays."""
    events = SseParser().feed(b"id: 1\nretry: 1" + b"0" * 400 + b"\n\n")
    assert [(e.id, e.retry) for e in events] == [("1", None)]


@settings(FAST, max_examples=150)
@given(
    payloads=st.lists(st.text(max_size=40) | st.just(""), min_size=1, max_size=60),
    max_event=st.integers(8, 200),
    cuts=st.lists(st.integers(0, 100_000), max_size=8),
)
@example(payloads=[""] * 20, max_event=8, cuts=[])  # 20 empty lines: 19 bytes of data
def test_no_dispatched_event_exceeds_max_event_DS4(
    payloads: list[str], max_event: int, cuts: list[int]
) -> None:
    """Either the event is refused, or its data fits in ``max_event`` bytes (UP-4)."""
    payloads = [p.replace("\r", "").replace("\n", "") for p in payloads]
    stream = b"".join(b"data: " + p.encode("utf-8", "replace") + b"\n" for p in payloads) + b"\n"
    try:
        events = feed(SseParser(max_event), stream, cuts)
    except ValueError:
        return
    assert all(len(e.data.encode()) <= max_event for e in events)


@settings(FAST, max_examples=60)
@given(max_event=st.integers(1, 500), excess=st.integers(1, 500), cuts=st.lists(st.integers()))
def test_single_oversized_data_line_is_refused_whatever_the_chunking(
    max_event: int, excess: int, cuts: list[int]
) -> None:
    stream = b"data: " + b"a" * (max_event + excess) + b"\n\n"
    with pytest.raises(ValueError, match="too large"):
        feed(SseParser(max_event), stream, cuts)


def test_empty_data_lines_cannot_grow_an_event_without_limit_DS4() -> None:
    """``data:`` lines add 0 to the size check but a newline each to the event's data."""
    parser = SseParser(max_event=100)
    with pytest.raises(ValueError, match="too large"):
        parser.feed(b"data:\n" * 2_000 + b"\n")
