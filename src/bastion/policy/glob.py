"""Globs of the policy language, compiled once to regular expressions.

``*`` matches any run of characters except ``/``, ``**`` any run including ``/`` (``**/``
also matches nothing, so ``a/**/b`` matches ``a/b``), ``?`` one character except ``/``;
every other character is literal (no classes, no escapes), and matching is exact and
case-sensitive. Tool and prompt names contain no ``/``, so there
``*`` is "anything"; in URIs and paths ``*`` stays within one segment.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

__all__ = ["GlobSet", "compile_glob", "is_literal", "literal_prefix"]

_WILD: Final = re.compile(r"\*\*/|\*\*|\*|\?")
_PIECES: Final = {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}


def is_literal(glob: str) -> bool:
    return _WILD.search(glob) is None


def literal_prefix(glob: str) -> str:
    """The characters before the first wildcard (the whole glob when it has none)."""
    found = _WILD.search(glob)
    return glob if found is None else glob[: found.start()]


def _translate(glob: str) -> str:
    out: list[str] = []
    last = 0
    for found in _WILD.finditer(glob):
        out.append(re.escape(glob[last : found.start()]))
        out.append(_PIECES[found.group()])
        last = found.end()
    out.append(re.escape(glob[last:]))
    return "".join(out)


def compile_glob(glob: str) -> re.Pattern[str]:
    return re.compile(_translate(glob), re.DOTALL)


class GlobSet:
    """Several globs: literal ones in a set, the rest as one alternation."""

    __slots__ = ("_exact", "_regex", "globs")

    def __init__(self, globs: Iterable[str]) -> None:
        self.globs = tuple(globs)
        self._exact = frozenset(g for g in self.globs if is_literal(g))
        wild = [_translate(g) for g in self.globs if not is_literal(g)]
        self._regex = re.compile("|".join(wild), re.DOTALL) if wild else None

    def __contains__(self, text: object) -> bool:
        if not isinstance(text, str):
            return False
        if text in self._exact:
            return True
        return self._regex is not None and self._regex.fullmatch(text) is not None

    def any_of(self, texts: Iterable[str]) -> bool:
        return any(t in self for t in texts)

    def __repr__(self) -> str:
        return f"GlobSet({list(self.globs)!r})"
