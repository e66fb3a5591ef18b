"""The 2026-07-28 ``subscriptions/listen`` streams being served, each with the cancel scope
that ends it (AU-5, SE-3, AZ-1).

A listen request lasts as long as the client keeps it open, so the decision taken when it
began is not enough: whoever watches credentials and the policy ends a stream whose caller
lapsed or that the policy no longer allows (``authorize.reauthorize``), and its client gets
-32003. The table holds one entry per listen request in flight, so it is bounded by what
bounds requests in flight (the concurrency limits).
"""

from __future__ import annotations

import anyio

from bastion._types import JSONValue
from bastion.errors import Denied
from bastion.pipeline.exchange import Exchange
from bastion.pipeline.stage import Handler

__all__ = ["OpenListens"]


class OpenListens:
    def __init__(self) -> None:
        self._open: dict[int, tuple[Exchange, anyio.CancelScope]] = {}

    def __len__(self) -> int:
        return len(self._open)

    def snapshot(self) -> list[Exchange]:
        """The listen requests open now."""
        return [exchange for exchange, _ in self._open.values()]

    async def hold(self, exchange: Exchange, proceed: Handler) -> JSONValue:
        """Serve the listen request ``exchange`` until it ends, or until ``end`` ends it.

        Raises:
            Denied: ``end`` ended it (the reason is in the exchange's audit detail).
        """
        scope = anyio.CancelScope()
        key = id(exchange)
        self._open[key] = (exchange, scope)
        try:
            with scope:
                return await proceed(exchange)
        finally:
            del self._open[key]
        raise Denied(
            f"listen stream ended: {exchange.detail.get('ended')}",
            message="Subscription no longer authorized",
        )

    def end(self, exchange: Exchange, reason: str) -> None:
        """End the open listen request ``exchange`` now; ``reason`` goes to its audit record."""
        entry = self._open.get(id(exchange))
        if entry is not None:
            exchange.detail["ended"] = reason
            entry[1].cancel()
