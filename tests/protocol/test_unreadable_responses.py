"""Which request an unreadable response was for (UP-4): the decoder and the stdio framing
name the id only when the bytes plainly begin a response, never from inside a result, and
never for a request of the peer's own."""

from __future__ import annotations

import pytest

from bastion.errors import ParseError
from bastion.protocol.codec import MessageDecoder, response_id_of
from bastion.transport.lines import HEAD_KEPT, OVERSIZED, LineFramer

DEEP = b'{"a":' * 100 + b'"x"' + b"}" * 100


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b'{"jsonrpc":"2.0","id":7,"result":' + DEEP + b"}", 7),
        (b'{"id":"r-1", "jsonrpc": "2.0", "error": ' + DEEP + b"}", "r-1"),
        (b'  {"jsonrpc":"2.0","id":-3,"result":{' + b"[" * 2000, -3),
        (b'{"jsonrpc":"2.0","id":7,"method":"x/y","params":' + DEEP + b"}", None),
        (b'{"jsonrpc":"2.0","result":{"id":7,"x":' + DEEP + b"}}", None),
        (b'{"result":' + DEEP + b',"jsonrpc":"2.0","id":7}', None),
        (b"not json at all", None),
    ],
)
def test_a_response_id_is_read_only_from_the_start_of_a_response(
    line: bytes, expected: object
) -> None:
    with pytest.raises(ParseError) as unreadable:
        MessageDecoder().decode(line)
    assert unreadable.value.response_id == expected
    assert response_id_of(line) == expected


def test_the_framing_keeps_the_head_of_each_oversized_line_in_order() -> None:
    framer = LineFramer(max_line=1000)
    first = b'{"jsonrpc":"2.0","id":1,"result":"' + b"x" * 2000 + b'"}\n'
    second = b'{"jsonrpc":"2.0","id":2,"result":"' + b"y" * 3000 + b'"}\n'
    lines = [line for i in range(0, len(first + second), 700)
             for line in framer.feed((first + second)[i : i + 700])]  # fmt: skip
    assert lines == [OVERSIZED, OVERSIZED]
    heads = [framer.oversized_head(), framer.oversized_head()]
    assert [response_id_of(h) for h in heads] == [1, 2]
    assert all(len(h) == HEAD_KEPT for h in heads)
    assert framer.oversized_head() == b""
