"""SSE streams of one 2025-11-25 HTTP session, with a bounded event store for resumption.

Every message the server sends belongs to a stream: the stream of the POST whose request it
relates to, or the session's standalone stream (served by GET). Each stream keeps its last
``EVENT_BUFFER`` events, so a client that lost its connection reconnects with GET and
``Last-Event-ID`` and gets the rest. Event ids are ``<stream>.<seq>``; stream ids are random,
so one session cannot guess another's. A stream reports the bytes it holds (``size``, a
fixed ``EVENT_COST`` per event included) and its closing to its ``owner``, which bounds them
(``http_replay``); ``followers`` counts the responses writing it now (``writing``).
"""

from __future__ import annotations

import contextlib
import secrets
from collections import deque
from collections.abc import AsyncIterator, Iterator
from typing import Final, Protocol

import anyio

__all__ = ["EVENT_BUFFER", "EVENT_COST", "EventStream", "StreamOwner", "parse_event_id"]

EVENT_BUFFER: Final = 256  # events kept per stream for replay; older ones are dropped
EVENT_COST: Final = 128  # bytes an event costs besides its data (tuple, int, bytes header)


class StreamOwner(Protocol):
    def resized(self, stream: EventStream, change: int) -> None:
        """``stream`` now holds ``change`` bytes more (or fewer)."""
        ...

    def finished(self, stream: EventStream) -> None:
        """``stream`` closed: nothing more will be added to it."""
        ...


def parse_event_id(event_id: str) -> tuple[str, int] | None:
    stream, _, seq = event_id.rpartition(".")
    if not stream or not (seq.isascii() and seq.isdigit()) or len(event_id) > 128:
        return None
    return stream, int(seq)


class EventStream:
    __slots__ = (
        "_buffer",
        "_changed",
        "_events",
        "_owner",
        "closed",
        "followers",
        "id",
        "seq",
        "size",
    )

    def __init__(self, owner: StreamOwner | None = None, *, buffer: int = EVENT_BUFFER) -> None:
        self.id = secrets.token_hex(8)
        self.seq = 0
        self.closed = False
        self.size = 0
        self.followers = 0
        self._owner = owner
        self._buffer = buffer
        self._events: deque[tuple[int, bytes]] = deque()
        self._changed = anyio.Event()

    def event_id(self, seq: int) -> str:
        return f"{self.id}.{seq}"

    def append(self, data: bytes) -> int:
        self.seq += 1
        self._events.append((self.seq, data))
        self._resize(len(data) + EVENT_COST)
        if len(self._events) > self._buffer:
            self.drop_oldest()
        self._wake()
        return self.seq

    def __len__(self) -> int:
        return len(self._events)

    def drop_oldest(self) -> bool:
        """Forget the oldest event kept for replay; False if there was none."""
        if not self._events:
            return False
        _, data = self._events.popleft()
        self._resize(-(len(data) + EVENT_COST))
        return True

    def forget(self) -> None:
        """Forget every event kept for replay."""
        self._events.clear()
        self._resize(-self.size)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._wake()
        if self._owner is not None:
            self._owner.finished(self)

    def _resize(self, change: int) -> None:
        self.size += change
        if self._owner is not None and change:
            self._owner.resized(self, change)

    def _wake(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """A response writes this stream meanwhile: its events are not dropped under it."""
        self.followers += 1
        try:
            yield
        finally:
            self.followers -= 1

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
