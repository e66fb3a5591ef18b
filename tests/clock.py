"""A settable clock for the code that takes one injected (limiters, key stores, sealers):
the design's own seam, not a mock."""

from __future__ import annotations


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
