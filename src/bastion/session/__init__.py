"""The async runtime around the protocol core: a JSON-RPC ``Peer`` and the error boundary."""

from __future__ import annotations

from bastion.session.peer import Call, NotificationHandler, Peer, RequestHandler, Sink
from bastion.session.wire import to_error_response

__all__ = ["Call", "NotificationHandler", "Peer", "RequestHandler", "Sink", "to_error_response"]
