"""The garbage collector's settings for a long-running gateway, and its pauses as figures.

CPython collects its youngest generation whenever 700 more container objects have been
allocated than freed. The requests in flight of a busy gateway hold that many at almost any
moment, so they are collected young again and again and promoted, and the promotions soon
trigger a full collection. A full collection walks every tracked object, and each open
client connection holds about thirty (protocol, transport, parser, timers, events), so
with 10,000 connections held a full collection stopped the gateway for 100-290 ms, every
few seconds (``bench/connections.py``).

``tune_collector`` therefore (1) freezes what start-up built (modules, configuration, the
catalog), so no collection walks it again, and (2) collects the young generation every
``YOUNG_THRESHOLD`` allocations (net), which requests in flight rarely reach, so little is
promoted and full collections become rare (none in the benchmark's runs). Cyclic garbage is
still collected, once that much of it has built up. ``CollectorWatch`` counts collections
and their pauses per generation for ``/metrics``.
"""

from __future__ import annotations

import gc
import time
from typing import Final

__all__ = ["YOUNG_THRESHOLD", "CollectorWatch", "tune_collector"]

YOUNG_THRESHOLD: Final = 20_000  # net allocations between young collections (CPython: 700)
MIDDLE_THRESHOLD: Final = 10  # young collections per middle one (CPython's default)
OLD_THRESHOLD: Final = 10  # middle collections per full one, at most (CPython's default)
GENERATIONS: Final = 3


class CollectorWatch:
    """A ``gc.callbacks`` entry: per generation, the collections, their total pause and the
    longest one, since it was installed."""

    def __init__(self) -> None:
        self.collections = [0] * GENERATIONS
        self.paused = [0.0] * GENERATIONS  # seconds
        self.longest = [0.0] * GENERATIONS
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        took = time.perf_counter() - self._started
        generation = info.get("generation", 0)
        if 0 <= generation < GENERATIONS:
            self.collections[generation] += 1
            self.paused[generation] += took
            self.longest[generation] = max(self.longest[generation], took)


_installed: list[CollectorWatch] = []


def tune_collector() -> CollectorWatch:
    """Freeze the objects built so far, raise the young threshold, and start watching; call
    when start-up is done, before serving. Later calls freeze again and return the same
    watch."""
    gc.collect()  # what start-up left as garbage is not worth freezing
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, MIDDLE_THRESHOLD, OLD_THRESHOLD)
    if not _installed:
        _installed.append(CollectorWatch())
        gc.callbacks.append(_installed[0])
    return _installed[0]
