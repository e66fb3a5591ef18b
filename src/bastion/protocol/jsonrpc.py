"""JSON-RPC 2.0 envelopes: the four message shapes, request ids and the standard codes.

Envelopes are frozen msgspec structs. ``params`` stays a plain JSON object here; the MCP
layer (``protocol.methods``) turns it into a typed struct per method. A ``RequestId`` is an
integer or a string; ``null``, booleans and floats are rejected by the decoder.
"""

from __future__ import annotations

from typing import Final, Literal, TypeAlias

import msgspec

from bastion._types import JSONObject, JSONValue

__all__ = [
    "INTERNAL_ERROR",
    "INVALID_PARAMS",
    "INVALID_REQUEST",
    "METHOD_NOT_FOUND",
    "PARSE_ERROR",
    "ErrorObject",
    "ErrorResponse",
    "Message",
    "Notification",
    "Request",
    "RequestId",
    "Response",
]

RequestId: TypeAlias = int | str

PARSE_ERROR: Final = -32700  # the bytes are not a JSON document we accept
INVALID_REQUEST: Final = -32600  # JSON, but not a JSON-RPC 2.0 message
METHOD_NOT_FOUND: Final = -32601  # no such method (or not in this protocol revision)
INVALID_PARAMS: Final = -32602  # params do not match the method's schema
INTERNAL_ERROR: Final = -32603  # our fault; never carries internal text


# ``params`` is UNSET (never encoded) when absent; UNSET is falsy, so ``params or {}`` works.
class Request(msgspec.Struct, frozen=True, kw_only=True):
    id: RequestId
    method: str
    params: JSONObject | msgspec.UnsetType = msgspec.UNSET
    jsonrpc: Literal["2.0"] = "2.0"


class Notification(msgspec.Struct, frozen=True, kw_only=True):
    method: str
    params: JSONObject | msgspec.UnsetType = msgspec.UNSET
    jsonrpc: Literal["2.0"] = "2.0"


class Response(msgspec.Struct, frozen=True, kw_only=True):
    id: RequestId
    result: JSONValue
    jsonrpc: Literal["2.0"] = "2.0"


class ErrorObject(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    code: int
    message: str
    data: JSONValue | msgspec.UnsetType = msgspec.UNSET


class ErrorResponse(msgspec.Struct, frozen=True, kw_only=True):
    id: RequestId | None
    error: ErrorObject
    jsonrpc: Literal["2.0"] = "2.0"


Message: TypeAlias = Request | Notification | Response | ErrorResponse
