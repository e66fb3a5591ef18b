"""The rate-limit stage (DS-2, DS-3): token buckets per principal, per tool and global, and
concurrency caps for expensive tools. A refusal is ``RateLimited`` (-32005 with
``retryAfter``), which the HTTP face answers 429 with ``Retry-After`` on 2026-07-28 and as a
JSON-RPC error inside the stream on 2025-11-25. One principal's exhaustion never throttles
another (except through the explicit global bucket).
"""

from __future__ import annotations

from bastion._types import JSONValue
from bastion.errors import RateLimited
from bastion.limits import ConcurrencyLimiter, LimitExceeded, RateLimiter
from bastion.pipeline.exchange import Exchange
from bastion.pipeline.stage import Handler

__all__ = ["RateLimitStage"]


class RateLimitStage:
    name = "rate-limit"

    def __init__(self, rates: RateLimiter, concurrency: ConcurrencyLimiter) -> None:
        self._rates = rates
        self._concurrency = concurrency

    async def __call__(self, exchange: Exchange, proceed: Handler) -> JSONValue:
        principal = exchange.principal.id
        tool = exchange.target.name if exchange.method == "tools/call" and exchange.target else None
        decision = self._rates.check(principal, tool)
        if not decision.allowed:
            exchange.detail["limit"] = decision.scope
            raise RateLimited(f"{decision.scope} limit", retry_after=decision.retry_after)
        if tool is None:
            return await proceed(exchange)
        try:
            async with self._concurrency.slot(principal, tool):
                return await proceed(exchange)
        except LimitExceeded as exc:
            exchange.detail["limit"] = exc.scope
            raise RateLimited("concurrency limit", retry_after=exc.retry_after) from exc
