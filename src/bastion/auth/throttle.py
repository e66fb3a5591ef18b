"""Throttling of failed authentications per client address (AU-8).

A token bucket per address: each failure takes a token, tokens come back at ``per_minute``
a minute, and an address with an empty bucket has its failed attempts answered 429 (the
``Authenticator`` still serves a valid credential from it).
The table is an LRU capped at ``max_addresses``, so a flood of addresses costs bounded
memory (an evicted address starts afresh, which only helps the attacker by one burst).
Time comes from an injected monotonic clock.
"""

from __future__ import annotations

import time
from collections import OrderedDict

from bastion._types import Clock

__all__ = ["FailureThrottle"]


class FailureThrottle:
    """Bounded per-address failure budget: ``per_minute`` failures in a burst, refilling at
    ``per_minute`` per minute."""

    def __init__(
        self, *, per_minute: int, max_addresses: int, clock: Clock = time.monotonic
    ) -> None:
        if per_minute < 1 or max_addresses < 1:
            raise ValueError("per_minute and max_addresses must be positive")
        self._capacity = float(per_minute)
        self._rate = per_minute / 60.0
        self._max = max_addresses
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def retry_after(self, address: str) -> float:
        """Seconds until ``address`` may try again; 0.0 if it may try now."""
        tokens = self._tokens(address)
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self._rate

    def failed(self, address: str) -> None:
        """Record one failed authentication from ``address``."""
        tokens = self._tokens(address)
        self._buckets[address] = (max(tokens - 1.0, 0.0), self._clock())
        self._buckets.move_to_end(address)
        while len(self._buckets) > self._max:
            self._buckets.popitem(last=False)

    def _tokens(self, address: str) -> float:
        entry = self._buckets.get(address)
        if entry is None:
            return self._capacity
        tokens, at = entry
        return min(self._capacity, tokens + (self._clock() - at) * self._rate)
