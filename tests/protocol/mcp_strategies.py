"""Hypothesis strategies shared by the protocol property tests: JSON values and envelopes."""

from __future__ import annotations

from typing import Any

import msgspec
from hypothesis import strategies as st

from bastion.protocol.jsonrpc import (
    ErrorObject,
    ErrorResponse,
    Message,
    Notification,
    Request,
    Response,
)

# Bounded so json.dumps never meets Python's 4300-digit int limit.
json_ints = st.integers(min_value=-(2**80), max_value=2**80)
json_scalars = (
    st.none()
    | st.booleans()
    | json_ints
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
json_values: st.SearchStrategy[Any] = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=16,
)
json_objects: st.SearchStrategy[dict[str, Any]] = st.dictionaries(
    st.text(max_size=8), json_values, max_size=5
)
request_ids = json_ints | st.text(max_size=10)


@st.composite
def _error_objects(draw: st.DrawFn) -> ErrorObject:
    data = draw(st.just(msgspec.UNSET) | json_values)
    return ErrorObject(code=draw(json_ints), message=draw(st.text(max_size=20)), data=data)


def _params() -> st.SearchStrategy[Any]:
    return st.just(msgspec.UNSET) | json_objects


messages: st.SearchStrategy[Message] = st.one_of(
    st.builds(Request, id=request_ids, method=st.text(max_size=20), params=_params()),
    st.builds(Notification, method=st.text(max_size=20), params=_params()),
    st.builds(Response, id=request_ids, result=json_values),
    st.builds(ErrorResponse, id=st.none() | request_ids, error=_error_objects()),
)

# Envelope-shaped dicts: every member optional and sometimes of the wrong type.
_loose_ids = (
    st.none()
    | st.booleans()
    | json_ints
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=4)
)
_loose_errors = json_values | st.fixed_dictionaries(
    {},
    optional={
        "code": json_ints | json_scalars,
        "message": st.text(max_size=8) | json_scalars,
        "data": json_values,
        "extra": json_scalars,
    },
)
envelope_dicts: st.SearchStrategy[dict[str, Any]] = st.fixed_dictionaries(
    {},
    optional={
        "jsonrpc": st.sampled_from(["2.0", "2.0", "2.0", "1.0", "2", 2.0, None]),
        "id": _loose_ids,
        "method": st.text(max_size=8) | json_scalars,
        "params": json_objects | json_values,
        "result": json_values,
        "error": _loose_errors,
        "extra": json_scalars,
    },
)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_id(value: Any) -> bool:
    return _is_int(value) or isinstance(value, str)


UNSETTLED = "unsettled"


def expected_kind(obj: Any) -> str | None:
    """A reference model of IN-1: the message kind ``obj`` is, or None for -32600.

    Returns ``UNSETTLED`` for an error response without ``id``: valid by the MCP schemas,
    refused by the codec; pinned by ``corpus/valid/error-without-id.json``.
    """
    allowed = {"jsonrpc", "id", "method", "params", "result", "error"}
    if not isinstance(obj, dict) or not obj.keys() <= allowed or obj.get("jsonrpc") != "2.0":
        return None
    if "id" in obj and obj["id"] is not None and not _is_id(obj["id"]):
        return None
    if "params" in obj and not isinstance(obj["params"], dict):
        return None
    if "method" in obj:
        if not isinstance(obj["method"], str) or "result" in obj or "error" in obj:
            return None
        if "id" not in obj:
            return "Notification"
        return "Request" if obj["id"] is not None else None
    if "params" in obj or ("result" in obj) == ("error" in obj):
        return None
    if "error" in obj:
        error = obj["error"]
        if not isinstance(error, dict) or not _is_int(error.get("code")):
            return None
        if not isinstance(error.get("message"), str):
            return None
        return "ErrorResponse" if "id" in obj else UNSETTLED
    return "Response" if obj.get("id") is not None else None


def nesting_depth(value: Any) -> int:
    """Bracket depth of a JSON value: scalars 0, each array or object one more."""
    if isinstance(value, dict):
        return 1 + max((nesting_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((nesting_depth(v) for v in value), default=0)
    return 0
