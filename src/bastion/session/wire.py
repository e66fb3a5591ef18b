"""The one exception-to-wire boundary: any exception becomes a safe JSON-RPC error.

A ``BastionError`` goes out with its class code and its chosen safe message; an error a
peer sent us is relayed with the peer's own code and text (it is theirs, not ours); anything
else becomes -32603 "Internal error" and is logged here with an id a user can quote.
"""

from __future__ import annotations

import logging
import secrets

import msgspec

from bastion.errors import BastionError, PeerError
from bastion.protocol.codec import error_response
from bastion.protocol.jsonrpc import INTERNAL_ERROR, ErrorResponse, RequestId

__all__ = ["to_error_response"]

logger = logging.getLogger(__name__)


def to_error_response(exc: BaseException, request_id: RequestId | None) -> ErrorResponse:
    if isinstance(exc, PeerError):
        data = msgspec.UNSET if exc.peer_data is None else exc.peer_data
        return error_response(request_id, exc.peer_code, exc.peer_message, data)
    if isinstance(exc, BastionError):
        logger.debug("request %r refused: %s (%s)", request_id, type(exc).__name__, exc.detail)
        data = msgspec.UNSET if exc.data is None else exc.data
        return error_response(request_id, exc.code, exc.wire_message, data)
    error_id = secrets.token_hex(6)
    logger.error("internal error %s serving request %r", error_id, request_id, exc_info=exc)
    return error_response(request_id, INTERNAL_ERROR, "Internal error", {"errorId": error_id})
