"""What 2025-11-25 sessions keep for ``Last-Event-ID`` resumption, bounded in bytes (DS-4).

Every SSE stream of a session keeps its events so a client that lost its connection can
resume it with GET. A POST's stream is finished once it is closed (its answer is in); its
replay then stays at most ``ttl`` seconds. The bytes held (data plus ``EVENT_COST`` an event
and ``STREAM_COST`` a stream) are bounded per session and in all: over a bound, the finished
streams that finished first are dropped first (the session's own for its bound, anyone's for
the total), then, for a session's bound, the oldest events of its standalone (GET) stream
but its newest. Never dropped: a stream a response is writing now (``followers``), and one
still waiting for its answer; those are bounded by the requests in flight. Resuming a
dropped stream is resuming an unknown one (``http_legacy`` opens the standalone stream).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Iterator
from typing import Final

from bastion._types import Clock
from bastion.transport.http_streams import EventStream

__all__ = ["STREAM_COST", "ReplayBudget", "SessionReplay"]

STREAM_COST: Final = 2048  # bytes a stream costs besides its events (object, Event, deque, slots)


class ReplayBudget:
    """Shared by the sessions of one app: the bytes they all hold, and every finished
    stream, oldest first, with when it finished."""

    def __init__(self, *, per_session: int, total: int, ttl: float, clock: Clock) -> None:
        if per_session < 1 or total < 1 or ttl <= 0:
            raise ValueError("replay budgets and ttl must be positive")
        self.per_session = per_session
        self.total = total
        self.ttl = ttl
        self.clock = clock
        self.size = 0
        self._finished: OrderedDict[EventStream, tuple[SessionReplay, float]] = OrderedDict()

    def expire(self) -> None:
        """Drop the replay of streams finished more than ``ttl`` seconds ago."""
        cutoff = self.clock() - self.ttl
        expired: list[tuple[SessionReplay, EventStream]] = []
        for stream, (replay, at) in self._finished.items():  # in the order they finished
            if at > cutoff:
                break
            if stream.followers == 0:
                expired.append((replay, stream))
        for replay, stream in expired:
            replay.drop(stream)

    def fit(self, replay: SessionReplay) -> None:
        """Bring ``replay`` within its session's bound, then everyone within the total."""
        self.expire()
        while replay.size > self.per_session and replay.shed():
            pass
        while self.size > self.total:
            oldest = next(_takeable(self._finished), None)
            if oldest is None:
                return
            self._finished[oldest][0].drop(oldest)

    def finished(self, replay: SessionReplay, stream: EventStream) -> None:
        self._finished[stream] = (replay, self.clock())

    def forgotten(self, stream: EventStream) -> None:
        self._finished.pop(stream, None)


class SessionReplay:
    """One session's streams by id (the standalone one apart) and the bytes they hold;
    the ``owner`` of each."""

    def __init__(self, budget: ReplayBudget) -> None:
        self._budget = budget
        self.size = 0
        self.streams: dict[str, EventStream] = {}
        self._finished: OrderedDict[EventStream, None] = OrderedDict()
        self._closed = False
        self.standalone = self._new()

    def open(self) -> EventStream:
        """A new stream for one POST's messages, resumable by its id."""
        stream = self._new()
        self.streams[stream.id] = stream
        self._budget.fit(self)
        return stream

    def resized(self, stream: EventStream, change: int) -> None:
        if self._closed:
            return
        self._resize(change)
        if change > 0:
            self._budget.fit(self)

    def finished(self, stream: EventStream) -> None:
        if self._closed or stream is self.standalone:
            return
        self._finished[stream] = None
        self._budget.finished(self, stream)
        self._budget.fit(self)

    def shed(self) -> bool:
        """Drop the oldest finished stream, else the oldest standalone event but the
        newest; False if there was nothing to drop."""
        oldest = next(_takeable(self._finished), None)
        if oldest is not None:
            self.drop(oldest)
            return True
        return len(self.standalone) > 1 and self.standalone.drop_oldest()

    def drop(self, stream: EventStream) -> None:
        """Forget ``stream`` and its events: resuming it now resumes an unknown stream."""
        if self.streams.pop(stream.id, None) is None:
            return
        self._finished.pop(stream, None)
        self._budget.forgotten(stream)
        stream.forget()
        self._resize(-STREAM_COST)

    def close(self) -> None:
        """The session ended: release everything it held; what its streams get later (a
        request still running) is no longer counted."""
        for stream in list(self.streams.values()):
            self.drop(stream)
        self.standalone.forget()
        self._resize(-STREAM_COST)
        self._closed = True

    def _new(self) -> EventStream:
        stream = EventStream(self)
        self._resize(STREAM_COST)
        return stream

    def _resize(self, change: int) -> None:
        self.size += change
        self._budget.size += change


def _takeable(streams: Iterable[EventStream]) -> Iterator[EventStream]:
    """The streams no response is writing now, in order."""
    return (s for s in streams if s.followers == 0)
