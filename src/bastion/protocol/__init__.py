"""The sans-IO MCP protocol core: framing, envelopes, typed payloads, correlation.

Nothing here awaits, opens a socket or knows about policy; transports and sessions wrap it.
Names are re-exported lazily, so importing a light submodule (``protocol.versions``) does
not load msgspec: the stdio fast start answers ``initialize`` before that.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
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

_HOME = {
    **dict.fromkeys(("MessageDecoder", "decode", "encode", "error_response"), "codec"),
    **dict.fromkeys(("Correlator", "InflightTable", "TableFull"), "correlation"),
    **dict.fromkeys(
        (
            "ErrorObject",
            "ErrorResponse",
            "Message",
            "Notification",
            "Request",
            "RequestId",
            "Response",
        ),
        "jsonrpc",
    ),
    "RequestStateSealer": "request_state",
    **dict.fromkeys(("LEGACY", "MODERN", "SUPPORTED_VERSIONS", "Era"), "versions"),
}


def __getattr__(name: str) -> object:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'bastion.protocol' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"bastion.protocol.{home}"), name)
    globals()[name] = value
    return value
