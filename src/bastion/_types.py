"""Shared type aliases: the JSON value shape and the injectable clock."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeAlias

__all__ = ["Clock", "JSONObject", "JSONValue"]

JSONValue: TypeAlias = Any
"""Any value msgspec's JSON decoder can produce; the only place ``Any`` stands for data."""

JSONObject: TypeAlias = dict[str, JSONValue]

Clock: TypeAlias = Callable[[], float]
