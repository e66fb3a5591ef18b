"""An in-memory transport pair for fast tests: two ``MessageStream`` ends joined together.

Messages are encoded to bytes on send and decoded on receive, so tests exercise the real
codec and its limits, not shared Python objects.
"""

from __future__ import annotations

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from bastion.errors import BastionError
from bastion.protocol.codec import MessageDecoder, encode
from bastion.protocol.jsonrpc import Message

__all__ = ["MemoryStream", "create_memory_pair"]


class MemoryStream:
    def __init__(
        self,
        send: MemoryObjectSendStream[bytes],
        receive: MemoryObjectReceiveStream[bytes],
        decoder: MessageDecoder,
    ) -> None:
        self._send = send
        self._receive = receive
        self._decoder = decoder

    async def receive(self) -> Message | BastionError:
        data = await self._receive.receive()
        try:
            return self._decoder.decode(data)
        except BastionError as exc:
            return exc

    async def send(self, message: Message) -> None:
        await self._send.send(encode(message))

    async def send_raw(self, data: bytes) -> None:
        """Send bytes as they are (tests of malformed input)."""
        await self._send.send(data)

    async def aclose(self) -> None:
        await self._send.aclose()
        await self._receive.aclose()

    async def __aenter__(self) -> MemoryStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


def create_memory_pair(
    *, decoder: MessageDecoder | None = None, buffer: int = 0
) -> tuple[MemoryStream, MemoryStream]:
    """Two connected ends: what one sends, the other receives."""
    dec = decoder or MessageDecoder()
    a_send, b_receive = anyio.create_memory_object_stream[bytes](buffer)
    b_send, a_receive = anyio.create_memory_object_stream[bytes](buffer)
    return MemoryStream(a_send, a_receive, dec), MemoryStream(b_send, b_receive, dec)
