"""The sans-IO MCP protocol core: framing, envelopes, typed payloads, correlation.

Nothing here awaits, opens a socket or knows about policy; transports and sessions wrap it.
"""

from __future__ import annotations

from bastion.protocol.codec import MessageDecoder, decode, encode, error_response
from bastion.protocol.correlation import Correlator, InflightTable, TableFull
from bastion.protocol.jsonrpc import (
    ErrorObject,
    ErrorResponse,
    Message,
    Notification,
    Request,
    RequestId,
    Response,
)
from bastion.protocol.request_state import RequestStateSealer
from bastion.protocol.versions import LEGACY, MODERN, SUPPORTED_VERSIONS, Era

__all__ = [  # noqa: RUF022 - plain sorted order, as tests/test_exported_members.py checks
    "Correlator",
    "Era",
    "ErrorObject",
    "ErrorResponse",
    "InflightTable",
    "LEGACY",
    "MODERN",
    "Message",
    "MessageDecoder",
    "Notification",
    "Request",
    "RequestId",
    "RequestStateSealer",
    "Response",
    "SUPPORTED_VERSIONS",
    "TableFull",
    "decode",
    "encode",
    "error_response",
]
