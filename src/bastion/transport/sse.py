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
    """Incremental SSE parser; every event and every partial line is capped at ``max_event``
    bytes, counted as they arrive, so neither memory nor work grows past the cap."""

    __slots__ = ("_buf", "_data", "_event", "_id", "_retry", "_size", "last_event_id", "max_event")

    def __init__(self, max_event: int = DEFAULT_MAX_EVENT) -> None:
        self.max_event = max_event
        self._buf = bytearray()
        self._data: list[str] = []
        self._size = 0  # bytes of data lines (with separators) in the current event
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
        start = 0
        while True:
            end = self._buf.find(b"\n", start)
            if end < 0:
                break
            raw = bytes(self._buf[start:end])
            start = end + 1
            event = self._line(raw.rstrip(b"\r"))
            if event is not None:
                events.append(event)
        del self._buf[:start]
        if len(self._buf) > self.max_event:
            raise ValueError("SSE event too large")
        return events

    def _line(self, raw: bytes) -> SseEvent | None:
        if not raw:
            return self._dispatch()
        if raw.startswith(b":"):
            return None
        name, _, value_bytes = raw.partition(b":")
        value = value_bytes.removeprefix(b" ").decode("utf-8", "replace")
        if name == b"data":
            self._size += len(value_bytes) + 1
            if self._size > self.max_event:
                raise ValueError("SSE event too large")
            self._data.append(value)
        elif name == b"event":
            self._event = value
        elif name == b"id" and "\x00" not in value:
            self._id = value
        elif name == b"retry" and value.isascii() and value.isdigit() and len(value) <= 9:
            self._retry = int(value)  # longer: ignored, as no reader waits that long
        return None

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
        self._data, self._size, self._event, self._id, self._retry = [], 0, "", None, None
        return event
