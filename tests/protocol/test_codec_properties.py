"""Property tests of the JSON-RPC codec and ``parse_params`` (SECURITY.md IN-1, IN-2, VT-2).

Nothing but ``ParseError`` (-32700) and ``InvalidRequest`` (-32600) may leave ``decode``;
valid JSON is never -32700 unless too large or too deep; the decoded kind agrees with a
reference model of the envelope rules; limits hold exactly at their boundaries.
"""

from __future__ import annotations

import json
import time
from typing import Any

import msgspec
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from mcp_strategies import (
    UNSETTLED,
    envelope_dicts,
    expected_kind,
    json_objects,
    json_values,
    messages,
    nesting_depth,
)

from bastion.errors import InvalidParams, InvalidRequest, ParseError
from bastion.protocol.codec import DEFAULT_MAX_DEPTH, MessageDecoder, decode, encode
from bastion.protocol.jsonrpc import ErrorResponse, Message, Response
from bastion.protocol.methods import CLIENT_METHODS, parse_params

FAST = settings(derandomize=True, database=None, deadline=None, max_examples=150)


@st.composite
def mutated_messages(draw: st.DrawFn) -> bytes:
    """A valid encoded message with a few random byte-level edits."""
    data = bytearray(encode(draw(messages)))
    for _ in range(draw(st.integers(1, 4))):
        pos = draw(st.integers(0, len(data)))
        op = draw(st.sampled_from(["insert", "delete", "replace"]))
        byte = draw(st.sampled_from(b'[]{}",:\\0e-.\x00\xff\xc3 \ntnf'))
        if op == "insert":
            data.insert(pos, byte)
        elif pos < len(data):
            if op == "delete":
                del data[pos]
            else:
                data[pos] = byte
    return bytes(data)


@FAST
@given(data=st.binary(max_size=300) | mutated_messages())
@example(data=b'{"jsonrpc":"2.0","x":"\x80"}')  # typed pass fails first, then bad UTF-8
def test_arbitrary_bytes_only_raise_protocol_errors_IN1_VT2(data: bytes) -> None:
    try:
        message = decode(data)
    except (ParseError, InvalidRequest) as exc:
        assert exc.code in (-32700, -32600)
        assert type(exc) in (ParseError, InvalidRequest)
    else:
        assert decode(encode(message)) == message


def _check_json_value(value: Any, ensure_ascii: bool) -> None:
    raw = json.dumps(value, ensure_ascii=ensure_ascii).encode()
    kind = expected_kind(value)
    try:
        message = decode(raw)
    except ParseError as exc:
        pytest.fail(f"valid JSON answered with -32700: {raw!r} ({exc})")
    except InvalidRequest:
        assert kind in (None, UNSETTLED), f"{raw!r} should decode as {kind}"
        return
    assert kind in (type(message).__name__, UNSETTLED), f"{raw!r} decoded, expected {kind}"
    if isinstance(message, ErrorResponse):  # members of an error object beyond ours drop
        error = {k: v for k, v in value["error"].items() if k in {"code", "message", "data"}}
        value = {**value, "error": error}
    assert msgspec.json.decode(encode(message)) == value


@FAST
@given(value=json_values, ensure_ascii=st.booleans())
def test_arbitrary_json_values_give_only_invalid_request_IN1(
    value: Any, ensure_ascii: bool
) -> None:
    _check_json_value(value, ensure_ascii)


@settings(FAST, max_examples=300)
@given(value=envelope_dicts, ensure_ascii=st.booleans())
def test_envelope_shaped_dicts_follow_the_reference_model_IN1(
    value: dict[str, Any], ensure_ascii: bool
) -> None:
    _check_json_value(value, ensure_ascii)


@FAST
@given(message=messages)
def test_valid_envelopes_round_trip_IN1(message: Message) -> None:
    wire = encode(message)
    assert decode(wire) == message
    assert encode(decode(wire)) == wire


@FAST
@given(flag=st.booleans(), shape=st.sampled_from(["request", "response", "error"]))
def test_bool_request_id_is_rejected_IN1(flag: bool, shape: str) -> None:
    body: dict[str, Any] = {"jsonrpc": "2.0", "id": flag}
    if shape == "request":
        body["method"] = "ping"
    elif shape == "response":
        body["result"] = {}
    else:
        body["error"] = {"code": -32603, "message": "x"}
    with pytest.raises(InvalidRequest):
        decode(json.dumps(body).encode())


_LEAVES = ['"[[{{"', '"\\"[{\\\\"', "1", "null", '"}]]"', "[]", "{}"]


@st.composite
def _towers(draw: st.DrawFn) -> str:
    """A JSON value nested to a drawn depth, with bracket-laden strings and siblings."""
    inner = draw(st.sampled_from(_LEAVES))
    for is_object in reversed(draw(st.lists(st.booleans(), max_size=110))):
        sibling = draw(st.sampled_from(["", '"]]",', "[[]],", '{"[":"{"},']))
        inner = '{"k":' + inner + "}" if is_object else "[" + sibling + inner + "]"
    return inner


@settings(FAST, max_examples=200)
@given(tower=_towers(), max_depth=st.integers(1, 120))
def test_nesting_limit_is_exact_IN2(tower: str, max_depth: int) -> None:
    raw = ('{"jsonrpc":"2.0","id":1,"result":' + tower + "}").encode()
    depth = nesting_depth(json.loads(raw))
    decoder = MessageDecoder(max_depth=max_depth)
    if depth > max_depth:
        with pytest.raises(ParseError):
            decoder.decode(raw)
    else:
        message = decoder.decode(raw)
        assert isinstance(message, Response)
        assert message.result == json.loads(tower)


@settings(FAST, max_examples=20)
@given(extra=st.integers(0, 2000))
def test_far_too_deep_is_a_parse_error_not_a_crash_IN2(extra: int) -> None:
    raw = b'{"jsonrpc":"2.0","id":1,"result":' + b"[" * (DEFAULT_MAX_DEPTH + extra) + b"}"
    with pytest.raises(ParseError):
        decode(raw)


def test_depth_scan_is_linear_on_unterminated_escaped_strings_IN2() -> None:
    """The pre-parse nesting scan must not go quadratic (a CPU DoS on a 4 MiB body).

    >64 brackets defeat the cheap exit; then an unterminated string of escaped quotes makes
    the string regex rescan to the end from every quote: 20 KB took ~1.7 s, 80 KB ~31 s.
    """
    raw = b"[]" * 70 + b'"' + b'\\"' * 10_000
    started = time.perf_counter()
    with pytest.raises((ParseError, InvalidRequest)):
        decode(raw)
    assert time.perf_counter() - started < 0.5


@FAST
@given(message=messages)
def test_size_cap_is_exact(message: Message) -> None:
    raw = encode(message)
    assert MessageDecoder(max_bytes=len(raw)).decode(raw) == message
    with pytest.raises(ParseError):
        MessageDecoder(max_bytes=len(raw) - 1).decode(raw)


@FAST
@given(data=st.binary(min_size=2, max_size=200) | messages.map(encode), choice=st.data())
def test_anything_over_the_size_cap_is_a_parse_error(data: bytes, choice: st.DataObject) -> None:
    cap = choice.draw(st.integers(1, len(data) - 1))
    with pytest.raises(ParseError):
        MessageDecoder(max_bytes=cap).decode(data)


@st.composite
def _params_for(draw: st.DrawFn, kind: type[Any]) -> dict[str, Any]:
    """Dicts that use the struct's own field names (sometimes) with arbitrary values."""
    names = [f.encode_name for f in msgspec.structs.fields(kind)]
    keys = draw(st.lists(st.sampled_from(names) | st.text(max_size=6), max_size=len(names) + 2))
    return {key: draw(json_values | json_objects) for key in keys}


@pytest.mark.parametrize("method", sorted(CLIENT_METHODS))
@settings(FAST, max_examples=30)
@given(data=st.data())
def test_parse_params_only_raises_invalid_params_IN1(method: str, data: st.DataObject) -> None:
    kind = CLIENT_METHODS[method].params
    params = data.draw(_params_for(kind) | json_objects | st.none())
    try:
        parsed = parse_params(kind, params)
    except InvalidParams as exc:
        assert exc.code == -32602
    else:
        assert isinstance(parsed, kind)
