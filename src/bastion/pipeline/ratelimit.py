"""The rate-limit stages (DS-2, DS-3): token buckets per principal, per tool and global, and
concurrency caps for expensive tools, in two stages sharing one ``RateLimiter``.

``PrincipalRateStage`` charges the principal's bucket and runs before authorize, so every
request a principal sends costs a token, denied ones included: otherwise a flood of calls
the policy refuses would be unlimited, and each still costs a policy decision and an audit
record. ``RateLimitStage`` runs after authorize and charges the per-tool and global buckets
and the concurrency caps, which only calls the policy allowed should spend (a denied call
must not use up the shared global bucket or another tool's quota). A refusal is
``RateLimited`` (-32005 with ``retryAfter``), which the HTTP face answers 429 with
``Retry-After`` on 2026-07-28 and as a JSON-RPC error inside the stream on 2025-11-25. One
principal's exhaustion never throttles another (except through the explicit global bucket).
"""

from __future__ import annotations

from bastion._types import JSONValue
from bastion.errors import RateLimited
from bastion.limits import ConcurrencyLimiter, LimitExceeded, RateDecision, RateLimiter
from bastion.pipeline.exchange import Exchange
from bastion.pipeline.stage import Handler

__all__ = ["PrincipalRateStage", "RateLimitStage"]


class PrincipalRateStage:
    name = "rate-limit-principal"

    def __init__(self, rates: RateLimiter) -> None:
        self._rates = rates

    async def __call__(self, exchange: Exchange, proceed: Handler) -> JSONValue:
        _admit(exchange, self._rates.check_principal(exchange.principal.id))
        return await proceed(exchange)


class RateLimitStage:
    name = "rate-limit"

    def __init__(self, rates: RateLimiter, concurrency: ConcurrencyLimiter) -> None:
        self._rates = rates
        self._concurrency = concurrency

    async def __call__(self, exchange: Exchange, proceed: Handler) -> JSONValue:
        principal = exchange.principal.id
        tool = exchange.target.name if exchange.method == "tools/call" and exchange.target else None
        _admit(exchange, self._rates.check_call(principal, tool))
        if tool is None:
            return await proceed(exchange)
        try:
            async with self._concurrency.slot(principal, tool):
                return await proceed(exchange)
        except LimitExceeded as exc:
            exchange.detail["limit"] = exc.scope
            raise RateLimited("concurrency limit", retry_after=exc.retry_after) from exc


def _admit(exchange: Exchange, decision: RateDecision) -> None:
    if not decision.allowed:
        exchange.detail["limit"] = decision.scope
        raise RateLimited(f"{decision.scope} limit", retry_after=decision.retry_after)
