"""Shared type aliases: the JSON value shape, the injectable clock, and the checks of a new
connection to an upstream (before it is made, and once it is up)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Final, NamedTuple, TypeAlias

__all__ = [
    "NO_CHECKS",
    "Clock",
    "ConnectCheck",
    "ConnectChecks",
    "JSONObject",
    "JSONValue",
    "PeerCheck",
    "SocketAddress",
]

JSONValue: TypeAlias = Any
"""Any value msgspec's JSON decoder can produce; the only place ``Any`` stands for data."""

JSONObject: TypeAlias = dict[str, JSONValue]

Clock: TypeAlias = Callable[[], float]

ConnectCheck: TypeAlias = Callable[[], Awaitable[bool]]
"""Awaited before each new connection to an upstream; False: do not connect (it logs why)."""

SocketAddress: TypeAlias = tuple[str, int]
"""An IP socket's (host, port)."""

PeerCheck: TypeAlias = Callable[[SocketAddress, SocketAddress], Awaitable[bool]]
"""Awaited once a new TCP connection to an upstream is up and before any byte is sent on
it, with its local and remote addresses; False: it is closed unused (it logs why)."""


class ConnectChecks(NamedTuple):
    """What each new connection to an upstream must pass (a None is not asked): ``before``
    it is made, and ``after``, once it is up and before anything is sent on it."""

    before: ConnectCheck | None = None
    after: PeerCheck | None = None


NO_CHECKS: Final = ConnectChecks()
"""No check asked: a configured upstream's connections."""
