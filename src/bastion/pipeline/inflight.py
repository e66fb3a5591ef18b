"""Requests held while served, each with the cancel scope that ends it early
(``HeldRequests``, also the base of ``listens.OpenListens``); here the requests served
outside a session (2026-07-28 stateless calls) (AU-5).

Revoking an API key ends its holder's 2025-11-25 sessions, and with them the calls they
serve; a stateless call has no session, so it is held here while it runs, and whoever
watches credentials (once a second) ends those whose caller lapsed: the call is cancelled,
answered -32003 ``Credential no longer valid`` and audited with ``detail.ended``. An entry
lives exactly as long as its request is served, so the table is bounded by the requests
the gateway serves at once (``gateway.http.max_connections``), not by anything a client
keeps.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Final

import anyio

from bastion._types import JSONValue
from bastion.errors import Denied
from bastion.pipeline.exchange import Exchange
from bastion.pipeline.stage import Handler

if TYPE_CHECKING:
    from bastion.auth.principal import Principal

__all__ = ["ENDED_MESSAGE", "HeldRequests", "InFlightCalls"]

ENDED_MESSAGE: Final = "Credential no longer valid"


class HeldRequests:
    """Requests being served, each with the cancel scope that ends it early; a request
    ended so is answered ``Denied(message)`` with the reason in its audit detail."""

    def __init__(self, what: str, message: str) -> None:
        self._open: dict[int, tuple[Exchange, anyio.CancelScope]] = {}
        self._what = what
        self._message = message

    def __len__(self) -> int:
        return len(self._open)

    def exchanges(self) -> list[Exchange]:
        """The requests held now."""
        return [exchange for exchange, _ in self._open.values()]

    async def hold(self, exchange: Exchange, proceed: Handler) -> JSONValue:
        """Serve ``exchange`` until it is answered, or until ``end`` ends it.

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
        raise Denied(f"{self._what} ended: {exchange.detail.get('ended')}", message=self._message)

    def end(self, exchange: Exchange, reason: str) -> bool:
        """End the held request ``exchange`` now (False if it is not held or already ending);
        ``reason`` goes to its audit record."""
        entry = self._open.get(id(exchange))
        if entry is None or entry[1].cancel_called:
            return False
        exchange.detail["ended"] = reason
        entry[1].cancel()
        return True


class InFlightCalls(HeldRequests):
    def __init__(self) -> None:
        super().__init__("call", ENDED_MESSAGE)

    def end_where(self, lapsed: Callable[[Principal], bool]) -> int:
        """End every call whose caller ``lapsed`` (a revoked or expired credential); returns
        how many ended."""
        return sum(
            self.end(exchange, "credential lapsed")
            for exchange in self.exchanges()
            if lapsed(exchange.principal)
        )
