"""Bytes <-> JSON-RPC messages, with hard limits on size and nesting.

``decode`` accepts one JSON-RPC message (no batches: they left MCP in 2025-06-18) and either
returns a typed envelope or raises ``ParseError`` (-32700: not JSON, too large, too deep) or
``InvalidRequest`` (-32600: JSON, but not a valid envelope). Nothing else escapes. The
decoder and encoder are built once per process; nesting deeper than ``max_depth`` is
refused by walking the decoded containers, since msgspec itself only stops at ~1000 levels.
Duplicate object keys are accepted and the last one wins (msgspec cannot report them);
that is safe because Bastion re-encodes what it validated and never forwards raw bytes.
A ``ParseError`` for bytes that plainly begin a response carries that response's id
(``response_id_of``), so the request it answers can fail at once.
"""

from __future__ import annotations

import re
from typing import Final, Literal

import msgspec

from bastion._types import JSONObject, JSONValue
from bastion.errors import InvalidRequest, ParseError
from bastion.protocol.jsonrpc import (
    ErrorObject,
    ErrorResponse,
    Message,
    Notification,
    Request,
    RequestId,
    Response,
)

__all__ = [
    "DEFAULT_MAX_DEPTH",
    "DEFAULT_MAX_MESSAGE_BYTES",
    "RESPONSE_HEAD_BYTES",
    "MessageDecoder",
    "decode",
    "encode",
    "error_response",
    "response_id_of",
    "unreadable",
]

DEFAULT_MAX_MESSAGE_BYTES: Final = 4 * 1024 * 1024  # as the official SDKs' body cap
DEFAULT_MAX_DEPTH: Final = 64  # SECURITY.md IN-2: far above any real MCP message


class _Envelope(msgspec.Struct, forbid_unknown_fields=True):
    jsonrpc: Literal["2.0"]
    id: RequestId | msgspec.UnsetType | None = msgspec.UNSET
    method: str | msgspec.UnsetType = msgspec.UNSET
    params: JSONObject | msgspec.UnsetType = msgspec.UNSET
    result: JSONValue | msgspec.UnsetType = msgspec.UNSET
    error: ErrorObject | msgspec.UnsetType = msgspec.UNSET


_ENVELOPE_DECODER: Final = msgspec.json.Decoder(_Envelope)
_ENCODER: Final = msgspec.json.Encoder()
_CONTAINERS: Final = frozenset({dict, list})


def _deeper_than(value: JSONValue, max_depth: int) -> bool:
    """Whether containers nest deeper than ``max_depth`` (``value`` itself is depth 1).

    Walks containers level by level and never looks inside strings, so it costs one step
    per object or array.
    """
    level: list[JSONValue] = [value]
    depth = 1
    while level:
        if depth > max_depth:
            return True
        below: list[JSONValue] = []
        for item in level:
            children = item.values() if type(item) is dict else item
            below.extend(c for c in children if type(c) in _CONTAINERS)
        level = below
        depth += 1
    return False


class MessageDecoder:
    """A reusable decoder with its own limits (one per transport configuration)."""

    __slots__ = ("max_bytes", "max_depth")

    def __init__(
        self, *, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES, max_depth: int = DEFAULT_MAX_DEPTH
    ) -> None:
        if max_bytes <= 0 or max_depth <= 0:
            raise ValueError("limits must be positive")
        self.max_bytes = max_bytes
        self.max_depth = max_depth

    def decode(self, data: bytes | bytearray | memoryview) -> Message:
        """Decode one message.

        Raises:
            ParseError: not JSON, larger than ``max_bytes`` or nested deeper than ``max_depth``.
            InvalidRequest: valid JSON that is not one JSON-RPC 2.0 message.
        """
        raw = bytes(data)
        if len(raw) > self.max_bytes:
            raise ParseError(f"message exceeds {self.max_bytes} bytes")
        # Fewer brackets than the limit cannot nest deeper than it: the common case skips the
        # walk. msgspec itself stops at about 1000 levels (RecursionError), so the decode
        # below is bounded even for hostile input; the walk then applies our tighter limit.
        may_be_deep = raw.count(b"[") + raw.count(b"{") > self.max_depth
        try:
            env = _ENVELOPE_DECODER.decode(raw)
        except msgspec.ValidationError as exc:
            # msgspec validates while parsing: tell malformed JSON from a wrong shape.
            try:
                generic = msgspec.json.decode(raw)
            except (msgspec.DecodeError, RecursionError, UnicodeDecodeError) as inner:
                raise unreadable("malformed JSON", raw) from inner
            if may_be_deep and _deeper_than(generic, self.max_depth):
                raise unreadable(f"message nested deeper than {self.max_depth}", raw) from exc
            if isinstance(generic, list):
                raise InvalidRequest("batches are not supported") from exc
            raise InvalidRequest(str(exc)) from exc
        except (msgspec.DecodeError, RecursionError, UnicodeDecodeError) as exc:
            raise unreadable("malformed JSON", raw) from exc
        error_data = env.error.data if isinstance(env.error, ErrorObject) else msgspec.UNSET
        parts = [v for v in (env.params, env.result, error_data) if v is not msgspec.UNSET]
        # The list stands in for the envelope object itself, at depth 1.
        if may_be_deep and _deeper_than(parts, self.max_depth):
            raise unreadable(f"message nested deeper than {self.max_depth}", raw)
        return _classify(env)


# The start of a response as JSON-RPC libraries write it: ``{"jsonrpc":"2.0","id":ID,`` then
# ``"result"`` or ``"error"`` (``jsonrpc`` may come after ``id``). Anchored at the first
# brace, so an ``"id"`` inside a result can never be taken for the response's own.
_RESPONSE_START: Final = re.compile(
    rb'\s*\{\s*(?:"jsonrpc"\s*:\s*"2\.0"\s*,\s*)?"id"\s*:\s*'
    rb'(?P<id>-?[0-9]{1,18}|"(?:[^"\\\x00-\x1f]){1,256}")\s*,\s*'
    rb'(?:"jsonrpc"\s*:\s*"2\.0"\s*,\s*)?"(?:result|error)"\s*:'
)
RESPONSE_HEAD_BYTES: Final = 512
"""How much of an unreadable line ``response_id_of`` needs."""


def response_id_of(head: bytes) -> RequestId | None:
    """The id of the response whose first bytes are ``head``, if they plainly begin one."""
    found = _RESPONSE_START.match(head[:RESPONSE_HEAD_BYTES])
    if found is None:
        return None
    text = found["id"]
    return text[1:-1].decode("utf-8", "replace") if text.startswith(b'"') else int(text)


def unreadable(detail: str, raw: bytes) -> ParseError:
    """The ``ParseError`` for ``raw`` (or its first bytes), naming the response it begins."""
    error = ParseError(detail)
    error.response_id = response_id_of(raw)
    return error


def _classify(env: _Envelope) -> Message:
    has_id = env.id is not msgspec.UNSET
    if env.method is not msgspec.UNSET:
        if env.result is not msgspec.UNSET or env.error is not msgspec.UNSET:
            raise InvalidRequest("a request carries neither result nor error")
        params = env.params
        if not has_id:
            return Notification(method=env.method, params=params)
        if env.id is None:
            raise InvalidRequest("request id must not be null")
        assert not isinstance(env.id, msgspec.UnsetType)
        return Request(id=env.id, method=env.method, params=params)
    if env.params is not msgspec.UNSET:
        raise InvalidRequest("not a request, notification or response")
    has_result = env.result is not msgspec.UNSET
    if has_result == (env.error is not msgspec.UNSET):
        raise InvalidRequest("a response carries exactly one of result and error")
    if isinstance(env.error, ErrorObject):
        # Both MCP schemas allow an error without an id (e.g. for an unparseable request).
        return ErrorResponse(
            id=None if isinstance(env.id, msgspec.UnsetType) else env.id, error=env.error
        )
    if env.id is None or isinstance(env.id, msgspec.UnsetType):
        raise InvalidRequest("a result needs an id")
    return Response(id=env.id, result=env.result)


_DEFAULT_DECODER: Final = MessageDecoder()


def decode(data: bytes | bytearray | memoryview) -> Message:
    """Decode with the default limits; see ``MessageDecoder.decode``."""
    return _DEFAULT_DECODER.decode(data)


def encode(message: Message | JSONObject) -> bytes:
    """Encode a message (or an already-built JSON object) to compact JSON bytes."""
    return _ENCODER.encode(message)


def error_response(
    request_id: RequestId | None, code: int, message: str, data: JSONValue = msgspec.UNSET
) -> ErrorResponse:
    return ErrorResponse(id=request_id, error=ErrorObject(code=code, message=message, data=data))
