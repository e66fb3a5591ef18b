"""``TokenBucket``: the one rate-limiting primitive, pure arithmetic on a time you pass in.

A bucket holds at most ``burst`` tokens and refills at ``rate`` tokens per second; a call
costs one token. So in any window of ``t`` seconds it admits at most ``burst + rate * t``
calls. It reads no clock itself: the owner (``RateLimiter``) reads its injected monotonic
clock once per check and hands the same instant to every bucket it consults.
"""

from __future__ import annotations

from typing import Final

__all__ = ["TOLERANCE", "TokenBucket"]

# Refills are floating-point sums, so after exactly the wait a bucket advertised, it can hold
# a hair less than the token it was promised (found by tests/limits' properties). A token
# counts as whole within this much; the excess it can admit is negligible.
TOLERANCE: Final = 1e-9


class TokenBucket:
    """``burst`` tokens at most, ``rate`` more per second; starts full at ``now``."""

    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        if not rate > 0 or not burst >= 1:
            raise ValueError("a token bucket needs rate > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.stamp = now

    def refill(self, now: float) -> float:
        """Add what accrued since the last refill (never above ``burst``); the tokens now.

        A clock that steps back (only a faulty fake one can) adds nothing and does not
        move the stamp, so it can never mint tokens either.
        """
        elapsed = now - self.stamp
        if elapsed > 0:
            self.tokens = min(self.burst, self.tokens + elapsed * self.rate)
            self.stamp = now
        return self.tokens

    def wait(self, now: float, cost: float = 1.0) -> float:
        """Seconds until ``cost`` tokens are available (0.0: available now). Takes nothing."""
        tokens = self.refill(now)
        return 0.0 if tokens + TOLERANCE >= cost else (cost - tokens) / self.rate

    def take(self, now: float, cost: float = 1.0) -> float:
        """Take ``cost`` tokens if available and return 0.0; else take nothing and return
        the seconds to wait."""
        # ``refill`` inlined: this is the per-request path, and two fewer calls halve it.
        tokens = self.tokens
        elapsed = now - self.stamp
        if elapsed > 0:
            tokens = self.tokens = min(self.burst, tokens + elapsed * self.rate)
            self.stamp = now
        if tokens + TOLERANCE >= cost:
            self.tokens = max(0.0, tokens - cost)
            return 0.0
        return (cost - tokens) / self.rate

    def is_full(self, now: float) -> bool:
        """True when the bucket has refilled to ``burst``: it then behaves exactly like a
        new bucket, so forgetting it loses nothing."""
        return self.refill(now) >= self.burst

    def __repr__(self) -> str:
        return f"TokenBucket(rate={self.rate}, burst={self.burst}, tokens={self.tokens:.3f})"
