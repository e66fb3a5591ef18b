"""The one exception tree of Bastion, and the only place error codes are defined.

Every error that can reach a peer derives from ``BastionError`` and carries a JSON-RPC
``code`` and a fixed, client-safe ``message``. Diagnostic detail lives in ``detail`` (for
logs) and never goes on the wire; ``data`` is the only structured field a peer sees, and
it is set only from values we chose, never from exception text.

    BastionError
    ├── ProtocolError                 malformed traffic from a peer
    │   ├── ParseError                -32700  bytes are not JSON, or too large / too deep
    │   ├── InvalidRequest            -32600  JSON, but not a valid JSON-RPC message
    │   ├── MethodNotFound            -32601
    │   ├── InvalidParams             -32602
    │   ├── HeaderMismatch            -32020  HTTP mirror headers disagree with the body
    │   ├── MissingCapability         -32021  the client lacks a capability the call needs
    │   └── UnsupportedVersion        -32022  protocol version we do not speak
    ├── ResourceNotFound              -32002
    ├── RequestCancelled              (never sent; the request was cancelled)
    ├── PeerError                     an error response received from a peer (code as sent)
    ├── TransportClosed               the connection ended before an answer came
    ├── UpstreamUnavailable           -32004  the upstream is down, restarting or circuit-open
    ├── Denied                        -32003  refused by policy (AZ-4), or held for approval
    ├── RateLimited                   -32005  over a rate or concurrency limit (DS-3)
    ├── RequestTimeout                -32001  no answer within the deadline
    ├── ConfigError                   bad configuration (CLI edge only)
    └── InternalError                 -32603  anything unexpected, with a generic message
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "BastionError",
    "ConfigError",
    "Denied",
    "HeaderMismatch",
    "InternalError",
    "InvalidParams",
    "InvalidRequest",
    "MethodNotFound",
    "MissingCapability",
    "ParseError",
    "PeerError",
    "ProtocolError",
    "RateLimited",
    "RequestCancelled",
    "RequestTimeout",
    "ResourceNotFound",
    "TransportClosed",
    "UnsupportedVersion",
    "UpstreamUnavailable",
]


class BastionError(Exception):
    """Root of every Bastion error; ``code`` and ``message`` are what a peer may see."""

    code: ClassVar[int] = -32603
    message: ClassVar[str] = "Internal error"

    def __init__(
        self, detail: str = "", *, data: dict[str, Any] | None = None, message: str | None = None
    ) -> None:
        super().__init__(detail or self.message)
        self.detail = detail
        self.data = data
        # A subclass may choose a more specific safe message at the raise site; it must be
        # a literal or built only from values we validated, never from exception text.
        self.wire_message = message or self.message


class ProtocolError(BastionError):
    code = -32600
    message = "Invalid request"


class ParseError(ProtocolError):
    code = -32700
    message = "Parse error"
    response_id: int | str | None = None
    """When the unreadable bytes begin as a response, its id: the request it answers can then
    fail at once instead of at its timeout (set by the decoder and the stdio framing)."""


class InvalidRequest(ProtocolError):
    code = -32600
    message = "Invalid request"


class MethodNotFound(ProtocolError):
    code = -32601
    message = "Method not found"


class InvalidParams(ProtocolError):
    code = -32602
    message = "Invalid params"


class HeaderMismatch(ProtocolError):
    code = -32020
    message = "Header mismatch"


class MissingCapability(ProtocolError):
    code = -32021
    message = "Missing required client capability"


class UnsupportedVersion(ProtocolError):
    code = -32022
    message = "Unsupported protocol version"


class ResourceNotFound(BastionError):
    code = -32002
    message = "Resource not found"


class RequestCancelled(BastionError):
    code = -32800
    message = "Request cancelled"


class RequestTimeout(BastionError):
    code = -32001
    message = "Request timed out"


class TransportClosed(BastionError):
    code = -32000
    message = "Connection closed"


class UpstreamUnavailable(BastionError):
    code = -32004
    message = "Upstream unavailable"


class Denied(BastionError):
    """The policy refused the request (AZ-4). ``data`` may carry the deciding rule id and,
    for a call waiting for a human, the approval id; never the policy's explanation."""

    code = -32003
    message = "Denied by policy"


class RateLimited(BastionError):
    """Over a limit (DS-3); ``retry_after`` (whole seconds) becomes ``Retry-After`` on HTTP."""

    code = -32005
    message = "Too many requests"

    def __init__(self, detail: str = "", *, retry_after: int) -> None:
        super().__init__(detail, data={"retryAfter": retry_after})
        self.retry_after = retry_after


class ConfigError(BastionError):
    code = -32603
    message = "Configuration error"


class InternalError(BastionError):
    code = -32603
    message = "Internal error"


class PeerError(BastionError):
    """An error response a peer sent us; ``code`` is per instance, as the peer chose it."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.peer_code = code
        self.peer_message = message
        self.peer_data = data
