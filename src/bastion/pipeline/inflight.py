"""The requests served outside a session (2026-07-28 stateless calls), each with the cancel
scope that ends it (AU-5).

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

__all__ = ["ENDED_MESSAGE", "InFlightCalls"]

ENDED_MESSAGE: Final = "Credential no longer valid"


class InFlightCalls:
    def __init__(self) -> None:
        self._open: dict[int, tuple[Exchange, anyio.CancelScope]] = {}

    def __len__(self) -> int:
        return len(self._open)

    async def hold(self, exchange: Exchange, proceed: Handler) -> JSONValue:
        """Serve ``exchange`` until it is answered, or until ``end_where`` ends it.

        Raises:
            Denied: ``end_where`` ended it (the reason is in the exchange's audit detail).
        """
        scope = anyio.CancelScope()
        key = id(exchange)
        self._open[key] = (exchange, scope)
        try:
            with scope:
                return await proceed(exchange)
        finally:
            del self._open[key]
        raise Denied(f"call ended: {exchange.detail.get('ended')}", message=ENDED_MESSAGE)

    def end_where(self, lapsed: Callable[[Principal], bool]) -> int:
        """End every call whose caller ``lapsed`` (a revoked or expired credential); returns
        how many ended."""
        ended = 0
        for exchange, scope in list(self._open.values()):
            if not scope.cancel_called and lapsed(exchange.principal):
                exchange.detail["ended"] = "credential lapsed"
                scope.cancel()
                ended += 1
        return ended
