"""Tool name globs for limits: ``*`` any run, ``?`` one character, everything else literal.

Settings restrict globs to the AZ-3 name alphabet plus the two wildcards, so there is no
character class or escape to interpret. Resolutions are cached per tool name in a table that
is cleared when it reaches ``MAX_CACHED`` names (tool names reach the limiter only after
policy allowed them, but a bound costs nothing).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Final, Generic, TypeVar

__all__ = ["MAX_CACHED", "FirstMatch", "compile_tool_glob"]

MAX_CACHED: Final = 4096
T = TypeVar("T")


def compile_tool_glob(glob: str) -> re.Pattern[str]:
    parts = (".*" if c == "*" else "." if c == "?" else re.escape(c) for c in glob)
    return re.compile("".join(parts), re.DOTALL)


class FirstMatch(Generic[T]):
    """The value of the first (glob, value) pair whose glob matches a name, cached."""

    __slots__ = ("_cache", "_rules")

    def __init__(self, rules: Sequence[tuple[str, T]]) -> None:
        self._rules = [(compile_tool_glob(g).fullmatch, v) for g, v in rules]
        self._cache: dict[str, tuple[int, T] | None] = {}

    def __bool__(self) -> bool:
        return bool(self._rules)

    def __call__(self, name: str) -> tuple[int, T] | None:
        """(index of the matching rule, its value), or None."""
        try:
            return self._cache[name]
        except KeyError:
            pass
        found = _first(self._rules, name)
        if len(self._cache) >= MAX_CACHED:
            self._cache.clear()
        self._cache[name] = found
        return found


def _first(
    rules: Sequence[tuple[Callable[[str], re.Match[str] | None], T]], name: str
) -> tuple[int, T] | None:
    for index, (matches, value) in enumerate(rules):
        if matches(name) is not None:
            return index, value
    return None
