"""The 2026-07-28 ``subscriptions/listen`` streams being served, each with the cancel scope
that ends it (AU-5, SE-3, AZ-1).

A listen request lasts as long as the client keeps it open, so the decision taken when it
began is not enough: whoever watches credentials and the policy ends a stream whose caller
lapsed or that the policy no longer allows (``authorize.reauthorize``), and its client gets
-32003. The table holds one entry per listen request in flight; each holds a connection,
so one principal may hold at most ``MAX_LISTENS_PER_PRINCIPAL`` of them (DS-3: its next is
refused -32005, 429 on HTTP, until one ends) and cannot take every connection from the rest;
that refusal is audited under its own limit, ``LISTEN_LIMIT``.
"""

from __future__ import annotations

from typing import Final

import anyio

from bastion._types import JSONValue
from bastion.errors import Denied, RateLimited
from bastion.pipeline.exchange import Exchange
from bastion.pipeline.stage import Handler

__all__ = ["LISTEN_LIMIT", "MAX_LISTENS_PER_PRINCIPAL", "OpenListens"]

MAX_LISTENS_PER_PRINCIPAL: Final = 16
LISTEN_RETRY_AFTER: Final = 5  # seconds: an open stream ends when its client leaves
LISTEN_LIMIT: Final = "listens"  # the limit its refusals are audited (and tallied) under


class OpenListens:
    def __init__(self, *, per_principal: int = MAX_LISTENS_PER_PRINCIPAL) -> None:
        self._open: dict[int, tuple[Exchange, anyio.CancelScope]] = {}
        self._per_principal = per_principal

    def __len__(self) -> int:
        return len(self._open)

    def snapshot(self) -> list[Exchange]:
        """The listen requests open now."""
        return [exchange for exchange, _ in self._open.values()]

    async def hold(self, exchange: Exchange, proceed: Handler) -> JSONValue:
        """Serve the listen request ``exchange`` until it ends, or until ``end`` ends it.

        Raises:
            RateLimited: its principal already holds ``per_principal`` open streams.
            Denied: ``end`` ended it (the reason is in the exchange's audit detail).
        """
        owner = exchange.principal.id
        held = sum(1 for other, _ in self._open.values() if other.principal.id == owner)
        if held >= self._per_principal:
            exchange.detail["limit"] = LISTEN_LIMIT
            raise RateLimited(
                f"{held} subscriptions/listen streams open", retry_after=LISTEN_RETRY_AFTER
            )
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
