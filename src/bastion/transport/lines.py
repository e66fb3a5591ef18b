"""Newline-delimited framing (sans-IO) with a hard cap on line length.

``LineFramer.feed`` takes arbitrary chunks and returns the complete lines in them. A line
longer than ``max_line`` is never buffered whole: its bytes are dropped up to the next
newline and an ``OVERSIZED`` marker is returned in its place, so the caller can answer
with a parse error and carry on with the next message; the first ``HEAD_KEPT`` bytes of
each such line wait, in order, in ``oversized_head`` (to tell which request an oversized
answer was for). At end of input, ``finish`` returns the last line if the peer did not end
it with a newline.
"""

from __future__ import annotations

from collections import deque
from typing import Final

__all__ = ["DEFAULT_MAX_LINE", "HEAD_KEPT", "OVERSIZED", "LineFramer"]

DEFAULT_MAX_LINE: Final = 4 * 1024 * 1024  # one JSON-RPC message; matches the codec's cap
OVERSIZED: Final = b"\x00oversized"  # cannot be valid JSON, so it is never a real line
HEAD_KEPT: Final = 512  # bytes kept of each oversized line


class LineFramer:
    __slots__ = ("_buf", "_discarding", "_heads", "max_line")

    def __init__(self, max_line: int = DEFAULT_MAX_LINE) -> None:
        self.max_line = max_line
        self._buf = bytearray()
        self._discarding = False
        self._heads: deque[bytes] = deque()

    def oversized_head(self) -> bytes:
        """The first bytes of the oldest ``OVERSIZED`` line not asked about yet (b"" if
        none): call once for each ``OVERSIZED`` taken, in order."""
        return self._heads.popleft() if self._heads else b""

    def feed(self, chunk: bytes) -> list[bytes]:
        lines: list[bytes] = []
        start = 0
        while True:
            end = chunk.find(b"\n", start)
            if end < 0:
                break
            if self._discarding:
                self._discarding = False
                lines.append(OVERSIZED)
            elif len(self._buf) + (end - start) > self.max_line:
                self._keep_head(chunk, start)
                self._buf.clear()
                lines.append(OVERSIZED)
            else:
                self._buf += chunk[start:end]
                line = bytes(self._buf).rstrip(b"\r")
                self._buf.clear()
                if line.strip():
                    lines.append(line)
            start = end + 1
        rest = len(chunk) - start
        if rest and not self._discarding:
            if len(self._buf) + rest > self.max_line:
                self._keep_head(chunk, start)
                self._buf.clear()
                self._discarding = True
            else:
                self._buf += chunk[start:]
        return lines

    def _keep_head(self, chunk: bytes, start: int) -> None:
        head = bytes(self._buf[:HEAD_KEPT])
        self._heads.append(head + chunk[start : start + HEAD_KEPT - len(head)])

    def finish(self) -> list[bytes]:
        """At end of input: the unterminated last line, if any (``OVERSIZED`` if it was
        over the cap), so a final message without its newline is answered, not lost."""
        return self.feed(b"\n")
