"""Shared type aliases: the JSON value shape, the injectable clock, and a connect check."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeAlias

__all__ = ["Clock", "ConnectCheck", "JSONObject", "JSONValue"]

JSONValue: TypeAlias = Any
"""Any value msgspec's JSON decoder can produce; the only place ``Any`` stands for data."""

JSONObject: TypeAlias = dict[str, JSONValue]

Clock: TypeAlias = Callable[[], float]

ConnectCheck: TypeAlias = Callable[[], Awaitable[bool]]
"""Awaited before each new connection to an upstream; False: do not connect (it logs why)."""
