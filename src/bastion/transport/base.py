"""The seams every transport shares, and the loop that serves one message stream.

A ``MessageStream`` yields decoded messages (or the protocol error a bad frame caused, so
the peer can be told) and sends messages. An ``McpConnection`` is what the MCP layer
gives a transport for one client: the request handler plus notification hooks.
``serve_stream`` runs one over the other: the shape shared by stdio and the in-memory pair.
``RELATED_REQUEST`` carries, while an inbound message is handled, the id of our request
it came in answer to, when the transport knows it: a stream that does (an HTTP POST's SSE
stream) sets ``last_related`` for each message ``receive`` returns.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Final, Protocol

import anyio

from bastion._types import JSONValue
from bastion.errors import BastionError
from bastion.protocol.jsonrpc import Message, Notification, RequestId
from bastion.session.peer import Call, Peer

__all__ = ["DRAIN_TIMEOUT", "RELATED_REQUEST", "McpConnection", "MessageStream", "serve_stream"]

DRAIN_TIMEOUT: Final = 10.0  # seconds in-flight requests may take after the input ended
RELATED_REQUEST: Final[ContextVar[RequestId | None]] = ContextVar(
    "bastion_related_request", default=None
)


class MessageStream(Protocol):
    async def receive(self) -> Message | BastionError:
        """The next message; raises ``anyio.EndOfStream`` when the peer is gone."""
        ...

    async def send(self, message: Message) -> None: ...

    async def aclose(self) -> None: ...


class McpConnection(Protocol):
    """What a transport needs from the MCP layer for one client connection."""

    async def __call__(self, call: Call) -> JSONValue: ...

    async def on_notification(self, note: Notification) -> None: ...

    def attach(self, peer: Peer) -> None: ...

    def detach(self) -> None: ...


async def serve_stream(stream: MessageStream, connection: McpConnection) -> None:
    """Serve one client arriving on ``stream`` until it goes away."""

    async def sink(message: Message, related: RequestId | None) -> None:
        await stream.send(message)

    async with Peer(sink, connection, on_notification=connection.on_notification) as peer:
        connection.attach(peer)
        try:
            while True:
                try:
                    item = await stream.receive()
                    await peer.dispatch(item)
                except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
                    break  # it stopped sending, or an answer can no longer be written
            # The client stopped sending; what it already asked for still gets its answer.
            await peer.drain(DRAIN_TIMEOUT)
        finally:
            connection.detach()
