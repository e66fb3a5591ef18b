"""Globs of the policy language, compiled once to regular expressions.

``*`` matches any run of characters except ``/``, ``**`` any run including ``/`` (``**/``
also matches nothing, so ``a/**/b`` matches ``a/b``), ``?`` one character except ``/``;
every other character is literal (no classes, no escapes), and matching is exact and
case-sensitive. Tool and prompt names contain no ``/``, so there
``*`` is "anything"; in URIs and paths ``*`` stays within one segment.

Globs run on RE2 (google-re2), in time linear in the text: a client picks the text (an
argument, a name), and on Python's backtracking ``re`` a plausible rule such as
``**/secret/**/*.pem`` takes quadratic time (``"secret/" * 30000``: 15 s, the event loop
stopped) and ``*_*_*_*_*_*_*_x`` exponential time on a 121-character name.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

import re2

__all__ = ["Glob", "GlobSet", "compile_glob", "is_literal", "literal_prefix"]

_WILD: Final = re.compile(r"\*\*/|\*\*|\*|\?")
_PIECES: Final = {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}
_OPTIONS: Final = re2.Options()
_OPTIONS.log_errors = False
_OPTIONS.never_capture = True  # only "does it match" is asked
_OPTIONS.dot_nl = True  # ``*`` and ``**`` match any character, newlines too


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


def _full_match_set(patterns: Iterable[str]) -> re2.Set:
    """An RE2 set answering whether any of ``patterns`` matches a whole text."""
    compiled = re2.Set.FullMatchSet(_OPTIONS)
    for pattern in patterns:
        compiled.Add(pattern)
    compiled.Compile()
    return compiled


def _utf8(text: str) -> bytes:
    # Lone surrogates cannot be UTF-8; passed through, they match no ``?`` and no ``*``.
    return text.encode("utf-8", "surrogatepass")


class Glob:
    """One compiled glob."""

    __slots__ = ("_set", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self._set = _full_match_set([_translate(source)])

    def fullmatch(self, text: str) -> bool:
        """Whether the glob matches the whole of ``text``."""
        return self._set.Match(_utf8(text)) is not None


def compile_glob(glob: str) -> Glob:
    return Glob(glob)


class GlobSet:
    """Several globs: literal ones in a set, the rest as one RE2 set."""

    __slots__ = ("_exact", "_wild", "globs")

    def __init__(self, globs: Iterable[str]) -> None:
        self.globs = tuple(globs)
        self._exact = frozenset(g for g in self.globs if is_literal(g))
        wild = [_translate(g) for g in self.globs if not is_literal(g)]
        self._wild = _full_match_set(wild) if wild else None

    def __contains__(self, text: object) -> bool:
        if not isinstance(text, str):
            return False
        if text in self._exact:
            return True
        return self._wild is not None and self._wild.Match(_utf8(text)) is not None

    def any_of(self, texts: Iterable[str]) -> bool:
        return any(t in self for t in texts)

    def __repr__(self) -> str:
        return f"GlobSet({list(self.globs)!r})"
