"""SSE streams of one 2025-11-25 HTTP session, with a bounded event store for resumption.

Every message the server sends belongs to a stream: the stream of the POST whose request it
relates to, or the session's standalone stream (served by GET). Each stream keeps its last
``EVENT_BUFFER`` events, so a client that lost its connection reconnects with GET and
``Last-Event-ID`` and gets the rest. Event ids are ``<stream>.<seq>``; stream ids are random,
so one session cannot guess another's.
"""

from __future__ import annotations

import secrets
from collections import deque
from collections.abc import AsyncIterator
from typing import Final

import anyio

__all__ = ["EVENT_BUFFER", "EventStream", "parse_event_id"]

EVENT_BUFFER: Final = 256  # events kept per stream for replay; older ones are dropped


def parse_event_id(event_id: str) -> tuple[str, int] | None:
    stream, _, seq = event_id.rpartition(".")
    if not stream or not (seq.isascii() and seq.isdigit()) or len(event_id) > 128:
        return None
    return stream, int(seq)


class EventStream:
    __slots__ = ("_changed", "_events", "closed", "id", "seq")

    def __init__(self, *, buffer: int = EVENT_BUFFER) -> None:
        self.id = secrets.token_hex(8)
        self.seq = 0
        self.closed = False
        self._events: deque[tuple[int, bytes]] = deque(maxlen=buffer)
        self._changed = anyio.Event()

    def event_id(self, seq: int) -> str:
        return f"{self.id}.{seq}"

    def append(self, data: bytes) -> int:
        self.seq += 1
        self._events.append((self.seq, data))
        self._wake()
        return self.seq

    def close(self) -> None:
        self.closed = True
        self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    async def follow(self, after: int) -> AsyncIterator[tuple[int, bytes]]:
        """Events with a sequence number above ``after``, waiting for new ones until closed."""
        while True:
            for seq, data in list(self._events):
                if seq > after:
                    after = seq
                    yield seq, data
            if self.closed:
                return
            await self._changed.wait()
