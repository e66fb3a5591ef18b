"""A 2025-11-25 Streamable HTTP session: the MCP connection behind an ``Mcp-Session-Id``,
the peer that serves it, and the routing of every outgoing message to the SSE stream of the
request it relates to (or the standalone GET stream). What the streams keep for resumption
is bounded by the app's ``ReplayBudget`` (``http_replay``). Ending a session (DELETE, a
revoked or expired credential, the timeouts) cancels the requests it still serves, so their
upstream calls and concurrency slots end with it."""

from __future__ import annotations

import secrets

import anyio

from bastion.auth.principal import Principal
from bastion.protocol.codec import encode
from bastion.protocol.jsonrpc import ErrorResponse, Message, RequestId, Response
from bastion.protocol.versions import LEGACY_VERSIONS
from bastion.session.peer import Peer
from bastion.transport.base import McpConnection
from bastion.transport.http_replay import ReplayBudget, SessionReplay
from bastion.transport.http_streams import EventStream

__all__ = ["HttpSession", "new_session_id"]


def new_session_id() -> str:
    """SE-1: 256 bits from the CSPRNG, as URL-safe (visible ASCII) text."""
    return secrets.token_urlsafe(32)


class HttpSession:
    """One 2025-11-25 session: its peer, its streams, and where each message goes."""

    def __init__(
        self,
        session_id: str,
        connection: McpConnection,
        now: float,
        principal: Principal,
        replay: ReplayBudget,
    ) -> None:
        self.id = session_id
        self.principal = principal  # SE-2: the owner; nobody else may use or end the session
        self.created = now
        self.connection = connection
        self.version: str = LEGACY_VERSIONS[0]
        self.replay = SessionReplay(replay)
        self.streams: dict[str, EventStream] = self.replay.streams  # resumable POST streams
        self.by_request: dict[RequestId, EventStream] = {}
        self.standalone = self.replay.standalone
        self.get_open = False
        self.last_seen = now
        self.in_flight: set[anyio.CancelScope] = set()  # the requests being served
        self.peer = Peer(self.route, connection, on_notification=connection.on_notification)
        connection.attach(self.peer)

    async def route(self, message: Message, related: RequestId | None) -> None:
        stream = self.by_request.get(related) if related is not None else None
        if stream is None:
            stream = self.standalone
        stream.append(encode(message))
        if (
            related is not None
            and isinstance(message, Response | ErrorResponse)
            and (message.id == related)
        ):
            self.by_request.pop(related, None)
            stream.close()

    def open_stream(self, request_id: RequestId) -> EventStream:
        stream = self.replay.open()
        self.by_request[request_id] = stream
        return stream

    def close(self) -> None:
        for scope in self.in_flight:
            scope.cancel()
        self.peer.close()
        self.connection.detach()
        self.standalone.close()
        for stream in list(self.streams.values()):
            stream.close()
        self.replay.close()
