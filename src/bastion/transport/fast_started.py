"""The stdio stream of a session whose ``initialize`` the fast start answered (``cli.fast_start``).

The fast start answers before the configuration, the policy and the audit log exist. The
full server therefore reads that ``initialize`` again and serves it like any request:
authorized, rate-limited and audited (AZ-1, AD-1). The client already holds its answer, so
this stream keeps the second one off the wire. When the pipeline refused it, the client holds
a session the policy would not have opened, and ``on_refused`` ends it.
"""

from __future__ import annotations

from collections.abc import Callable

from bastion.errors import BastionError
from bastion.protocol.jsonrpc import ErrorObject, ErrorResponse, Message, RequestId, Response
from bastion.transport.base import MessageStream

__all__ = ["FastStartedStream"]


class FastStartedStream:
    """``inner``, minus the first answer to the request ``answered``."""

    def __init__(
        self,
        inner: MessageStream,
        answered: RequestId,
        on_refused: Callable[[ErrorObject], None],
    ) -> None:
        self._inner = inner
        self._answered: RequestId | None = answered
        self._on_refused = on_refused

    async def receive(self) -> Message | BastionError:
        return await self._inner.receive()

    async def send(self, message: Message) -> None:
        pending = self._answered
        if (
            pending is not None
            and isinstance(message, Response | ErrorResponse)
            and type(message.id) is type(pending)
            and message.id == pending
        ):
            self._answered = None
            if isinstance(message, ErrorResponse):
                self._on_refused(message.error)
            return
        await self._inner.send(message)

    async def aclose(self) -> None:
        await self._inner.aclose()
