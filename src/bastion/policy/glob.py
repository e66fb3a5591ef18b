"""Globs of the policy language, compiled once to regular expressions.

``*`` matches any run of characters except ``/``, ``**`` any run including ``/`` (``**/``
also matches nothing, so ``a/**/b`` matches ``a/b``), ``?`` one character except ``/``;
every other character is literal (no classes, no escapes), and matching is exact and
case-sensitive. Tool and prompt names contain no ``/``, so there
``*`` is "anything"; in URIs and paths ``*`` stays within one segment.

Principal ids and role names are not paths (``jwt:https://idp.example.com/realms/eng#alice``,
a Keycloak group ``/eng/devs``): their globs are compiled ``flat``, where ``*`` and ``?`` match
``/`` too, so ``principals: ["*"]`` means everyone and ``jwt:https://idp.example.com/*``
every subject of that issuer.

A client picks the text a glob runs on (an argument, a name), and Python's backtracking
``re`` takes up to about n**k steps for a text of n characters and a glob of k unbounded
wildcards: a plausible rule such as ``**/secret/**/*.pem`` took 15 s on ``"secret/" *
30000`` (the event loop stopped), ``*_*_*_*_*_*_*_x`` 5 s on a 121-character name. So a
text that could cost more than ``MAX_BACKTRACK`` steps is matched by RE2 (google-re2), in
time linear in the text. Shorter ones, nearly all in practice, stay on ``re``: RE2's
binding releases the GIL on every match, and with the audit writer thread running each
hand-back costs ~15 µs, far more than the match.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Final

import re2

__all__ = ["Glob", "GlobSet", "compile_glob", "is_literal", "literal_prefix"]

_WILD: Final = re.compile(r"\*\*/|\*\*|\*|\?")
_PIECES: Final = {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}
_FLAT_PIECES: Final = {"**/": "(?:.*/)?", "**": ".*", "*": ".*", "?": "."}
MAX_BACKTRACK: Final = 100_000  # n**k steps left to ``re`` (a few ms at worst)
_UNBOUNDED: Final = frozenset({"**/", "**", "*"})
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


def _translate(glob: str, *, flat: bool = False) -> str:
    pieces = _FLAT_PIECES if flat else _PIECES
    out: list[str] = []
    last = 0
    for found in _WILD.finditer(glob):
        out.append(re.escape(glob[last : found.start()]))
        out.append(pieces[found.group()])
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


def _longest_for_re(globs: Iterable[str]) -> float:
    """The longest text ``re`` may match against these globs within ``MAX_BACKTRACK``."""
    stars = max((sum(w.group() in _UNBOUNDED for w in _WILD.finditer(g)) for g in globs), default=0)
    return math.inf if stars < 2 else MAX_BACKTRACK ** (1 / stars)


class _Matcher:
    """Globs compiled twice: ``re`` for short texts, RE2 for the rest (module docstring).
    The RE2 set is compiled on the first long text: most globs never meet one, and a big
    policy compiles faster without it."""

    __slots__ = ("_longest", "_patterns", "_re", "_re2")

    def __init__(self, globs: list[str], *, flat: bool = False) -> None:
        self._patterns = [_translate(g, flat=flat) for g in globs]
        self._re = re.compile("|".join(self._patterns), re.DOTALL)
        self._re2: re2.Set | None = None
        self._longest = _longest_for_re(globs)

    def fullmatch(self, text: str) -> bool:
        if len(text) <= self._longest:
            return self._re.fullmatch(text) is not None
        return self.fullmatch_linear(text)

    def fullmatch_linear(self, text: str) -> bool:
        """The RE2 answer, whatever the length (a race compiles the same set twice)."""
        if self._re2 is None:
            self._re2 = _full_match_set(self._patterns)
        return self._re2.Match(_utf8(text)) is not None


class Glob:
    """One compiled glob."""

    __slots__ = ("_matcher", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self._matcher = _Matcher([source])

    def fullmatch(self, text: str) -> bool:
        """Whether the glob matches the whole of ``text``."""
        return self._matcher.fullmatch(text)


def compile_glob(glob: str) -> Glob:
    return Glob(glob)


class GlobSet:
    """Several globs: literal ones in a set, the rest as one alternation. ``flat``: globs of
    principal ids or role names, where ``*`` and ``?`` match ``/`` too (module docstring)."""

    __slots__ = ("_exact", "_wild", "globs")

    def __init__(self, globs: Iterable[str], *, flat: bool = False) -> None:
        self.globs = tuple(globs)
        self._exact = frozenset(g for g in self.globs if is_literal(g))
        wild = [g for g in self.globs if not is_literal(g)]
        self._wild = _Matcher(wild, flat=flat) if wild else None

    def __contains__(self, text: object) -> bool:
        if not isinstance(text, str):
            return False
        if text in self._exact:
            return True
        return self._wild is not None and self._wild.fullmatch(text)

    def any_of(self, texts: Iterable[str]) -> bool:
        return any(t in self for t in texts)

    def __repr__(self) -> str:
        return f"GlobSet({list(self.globs)!r})"
