"""Counting a repeated event and reporting it at most once per interval (DS-4: a peer that
repeats one fault must not fill the log): ``LogCounter``."""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["LogCounter"]


class LogCounter:
    """Counts events; ``count`` says when a report is due: at the first event, then at the
    first one at least ``interval`` seconds after the last report."""

    __slots__ = ("_clock", "_count", "_interval", "_next")

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = interval
        self._clock = clock
        self._count = 0
        self._next = 0.0

    def count(self) -> int | None:
        """Count one event; the number of events to report (this one and those not yet
        reported) when a report is due, else None."""
        self._count += 1
        now = self._clock()
        if now < self._next:
            return None
        counted, self._count, self._next = self._count, 0, now + self._interval
        return counted
