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

from bastion._types import JSONValue
from bastion.errors import RateLimited
from bastion.pipeline.exchange import Exchange
from bastion.pipeline.inflight import HeldRequests
from bastion.pipeline.stage import Handler

__all__ = ["LISTEN_LIMIT", "MAX_LISTENS_PER_PRINCIPAL", "OpenListens"]

MAX_LISTENS_PER_PRINCIPAL: Final = 16
LISTEN_RETRY_AFTER: Final = 5  # seconds: an open stream ends when its client leaves
LISTEN_LIMIT: Final = "listens"  # the limit its refusals are audited (and tallied) under


class OpenListens(HeldRequests):
    def __init__(self, *, per_principal: int = MAX_LISTENS_PER_PRINCIPAL) -> None:
        super().__init__("listen stream", "Subscription no longer authorized")
        self._per_principal = per_principal

    def snapshot(self) -> list[Exchange]:
        """The listen requests open now."""
        return self.exchanges()

    async def hold(self, exchange: Exchange, proceed: Handler) -> JSONValue:
        """Serve the listen request ``exchange`` until it ends, or until ``end`` ends it.

        Raises:
            RateLimited: its principal already holds ``per_principal`` open streams.
            Denied: ``end`` ended it (the reason is in the exchange's audit detail).
        """
        owner = exchange.principal.id
        held = sum(1 for other in self.exchanges() if other.principal.id == owner)
        if held >= self._per_principal:
            exchange.detail["limit"] = LISTEN_LIMIT
            raise RateLimited(
                f"{held} subscriptions/listen streams open", retry_after=LISTEN_RETRY_AFTER
            )
        return await super().hold(exchange, proceed)
