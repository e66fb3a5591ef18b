"""Server-Sent Events: encoding events (server face) and parsing a stream (client face).

The parser is incremental and bounded: an event larger than ``max_event`` is refused, so
a misbehaving upstream cannot make us buffer without limit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = ["DEFAULT_MAX_EVENT", "SseEvent", "SseParser", "encode_event"]

DEFAULT_MAX_EVENT: Final = 4 * 1024 * 1024 + 1024  # one message plus the field names


def encode_event(
    data: bytes, *, event_id: str | None = None, event: str = "message", retry_ms: int | None = None
) -> bytes:
    parts = []
    if event_id is not None:
        parts.append(b"id: " + event_id.encode("ascii"))
    if retry_ms is not None:
        parts.append(b"retry: %d" % retry_ms)
    if event and data:
        parts.append(b"event: " + event.encode("ascii"))
    # JSON from our encoder never contains a raw newline, so one data line suffices.
    parts.append(b"data: " + data)
    return b"\n".join(parts) + b"\n\n"


@dataclass(slots=True)
class SseEvent:
    data: str
    event: str = "message"
    id: str | None = None
    retry: int | None = None


class SseParser:
    __slots__ = ("_buf", "_data", "_event", "_id", "_retry", "last_event_id", "max_event")

    def __init__(self, max_event: int = DEFAULT_MAX_EVENT) -> None:
        self.max_event = max_event
        self._buf = b""
        self._data: list[str] = []
        self._event = ""
        self._id: str | None = None
        self._retry: int | None = None
        self.last_event_id: str | None = None

    def feed(self, chunk: bytes) -> list[SseEvent]:
        """Complete events in ``chunk``.

        Raises:
            ValueError: an event exceeds ``max_event`` bytes.
        """
        self._buf += chunk
        events: list[SseEvent] = []
        while True:
            idx = self._buf.find(b"\n")
            if idx < 0:
                if len(self._buf) > self.max_event:
                    raise ValueError("SSE event too large")
                return events
            raw, self._buf = self._buf[:idx], self._buf[idx + 1 :]
            line = raw.rstrip(b"\r").decode("utf-8", "replace")
            if not line:
                event = self._dispatch()
                if event is not None:
                    events.append(event)
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "data":
                self._data.append(value)
                if sum(len(d) for d in self._data) > self.max_event:
                    raise ValueError("SSE event too large")
            elif name == "event":
                self._event = value
            elif name == "id" and "\x00" not in value:
                self._id = value
            elif name == "retry" and value.isascii() and value.isdigit():
                self._retry = int(value)

    def _dispatch(self) -> SseEvent | None:
        if self._id is not None:
            self.last_event_id = self._id
        event = None
        if self._data or self._retry is not None or self._id is not None:
            event = SseEvent(
                data="\n".join(self._data),
                event=self._event or "message",
                id=self._id,
                retry=self._retry,
            )
        self._data, self._event, self._id, self._retry = [], "", None, None
        return event
