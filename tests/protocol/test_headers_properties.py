"""Property tests of the 2026-07-28 mirror headers (SEP-2243; SECURITY.md TR-10, TR-12, VT-2).

``encode_header_value`` must always yield a safe HTTP field value (visible ASCII and spaces,
no edge whitespace, never CR/LF/NUL) that ``decode_header_value`` turns back into the
original text; ``tool_param_headers`` must judge any upstream tool definition without
crashing, and ``param_headers`` must only emit safe values.
"""

from __future__ import annotations

import re
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st
from mcp_strategies import json_objects, json_values

from bastion.protocol.headers import (
    decode_header_value,
    encode_header_value,
    param_headers,
    tool_param_headers,
)

FAST = settings(derandomize=True, database=None, deadline=None, max_examples=300)
# fullmatch, never ``$``: ``$`` also matches before a trailing newline.
_FIELD_VALUE = re.compile(r"(?:[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?)?")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_SAMPLES = ["", " ", "\t", " a", "a ", "=?base64?", "=?base64?YQ==?=", "=?base64??=", "x-mcp"]
_SAMPLES += ["=?BASE64?YQ==?=", "\u00e9", "a\r\nb", "\x00", "eu\n", "=?base64?YQ==?=\n"]
_sentinel_like = st.builds(
    lambda a, b: f"=?base64?{a}?={b}", st.text(max_size=6), st.text(max_size=2)
)
_tricky_text = st.text() | st.sampled_from(_SAMPLES) | _sentinel_like


def _is_safe(value: str) -> bool:
    return _FIELD_VALUE.fullmatch(value) is not None


@FAST
@given(value=_tricky_text)
@example(value="eu\n")  # a trailing LF must not pass as plain visible ASCII
def test_encoded_values_are_safe_field_values_TR10(value: str) -> None:
    encoded = encode_header_value(value)
    assert _is_safe(encoded), repr(encoded)


@FAST
@given(value=_tricky_text)
@example(value="=?base64?YQ==?=")  # text that looks like the sentinel travels encoded
@example(value="=?base64??=\n")  # sent raw, then read back as the sentinel for ""
def test_decode_inverts_encode(value: str) -> None:
    assert decode_header_value(encode_header_value(value)) == value


@FAST
@given(value=_tricky_text)
def test_plain_safe_values_travel_unchanged(value: str) -> None:
    if _is_safe(value) and not (value.startswith("=?base64?") and value.endswith("?=")):
        assert encode_header_value(value) == value


@FAST
@given(raw=st.text(max_size=40) | _tricky_text)
def test_decode_never_raises_VT2(raw: str) -> None:
    assert decode_header_value(raw) is None or isinstance(decode_header_value(raw), str)


_NAMES = ["Region", "region", "X", "a b", "", "\u00e9", "Tenant-Id", "x:y", "Region\n"]
_HEADER_NAMES = st.sampled_from(_NAMES)
_TYPES = st.sampled_from(["string", "integer", "boolean", "number", "object", None]) | st.just(
    ["string", "null"]
)


@st.composite
def tools(draw: st.DrawFn, types: st.SearchStrategy[Any] = _TYPES | json_values) -> dict[str, Any]:
    """Tool definitions with assorted ``x-mcp-header`` annotations, valid and not."""
    properties: dict[str, Any] = {}
    for name in draw(st.lists(st.text(max_size=5), max_size=4)):
        prop: dict[str, Any] = dict(draw(json_objects))
        if draw(st.booleans()):
            prop["x-mcp-header"] = draw(_HEADER_NAMES | json_values)
        if draw(st.booleans()):
            prop["type"] = draw(types)
        properties[name] = prop
    schema: Any = {"type": "object", "properties": properties}
    return {"name": "t", "inputSchema": draw(st.just(schema) | json_values)}


@FAST
@given(tool=tools())
@example(
    tool={
        "name": "t",
        "inputSchema": {
            "properties": {"region": {"type": ["string", "null"], "x-mcp-header": "Region"}}
        },
    }
)
def test_tool_param_headers_judges_any_tool_without_crashing_VT2(tool: dict[str, Any]) -> None:
    """A JSON Schema ``type`` may be a list; such a tool is judged (not a TypeError)."""
    found = tool_param_headers(tool)
    assert found is None or isinstance(found, dict)


@FAST
@given(tool=tools(types=st.sampled_from(["string", "integer", "boolean", "number", "x"])))
@example(
    tool={
        "name": "t",
        "inputSchema": {"properties": {"r": {"type": "string", "x-mcp-header": "R\n"}}},
    }
)
def test_accepted_header_names_are_unique_tokens_TR10(tool: dict[str, Any]) -> None:
    found = tool_param_headers(tool)
    if not found:
        return
    assert all(_TOKEN.fullmatch(h) for h in found.values()), found
    assert len({h.lower() for h in found.values()}) == len(found)
    properties = tool["inputSchema"]["properties"]
    assert all(properties[name]["type"] in ("string", "integer", "boolean") for name in found)


@settings(FAST, max_examples=100)
@given(
    annotated=st.dictionaries(st.text(max_size=5), st.sampled_from(["Region", "T", "a-b"])),
    data=st.data(),
)
def test_param_headers_emit_only_safe_values_TR10(
    annotated: dict[str, str], data: st.DataObject
) -> None:
    arguments = {name: data.draw(json_values | _tricky_text) for name in annotated}
    for name, value in param_headers(annotated, arguments).items():
        assert name.startswith("Mcp-Param-")
        assert _is_safe(value)
