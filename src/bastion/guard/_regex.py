"""Schema regular expressions matched in linear time (IN-3, DS-4).

``pattern``, ``patternProperties`` and ``propertyNames`` patterns are ECMA-262 regular
expressions written by an upstream, and a client picks the text they run on. Python's ``re``
backtracks (``^(a|aa)+$`` against 45 characters runs for minutes, on the event loop), so
every schema regex is compiled with RE2 (google-re2), whose matching time is linear in the
text. ``\\uXXXX`` escapes become RE2's ``\\x{XXXX}``. A pattern RE2 cannot take (lookaround,
backreferences: no linear-time engine can) raises ``PatternError``; the schema is then
unusable and the tool held, as for a pattern over ``MAX_PATTERN`` characters.
"""

from __future__ import annotations

import functools
import re
from typing import Final

import re2

__all__ = ["MAX_PATTERN", "Pattern", "PatternError", "compile_pattern"]

MAX_PATTERN: Final = 1000  # characters in one pattern; real ones are well under 300
PATTERN_CACHE: Final = 4096  # compiled patterns kept (every schema's, across upstreams)
_UNICODE_ESCAPE: Final = re.compile(r"\\\\|\\u([0-9A-Fa-f]{4})")
_OPTIONS: Final = re2.Options()
_OPTIONS.log_errors = False  # a refused pattern is reported by the caller, not on stderr
_OPTIONS.never_capture = True  # only "does it match" is asked


class PatternError(ValueError):
    """The pattern is too long, invalid, or needs a backtracking engine."""


class Pattern:
    """One compiled pattern; ``search`` is safe to call from any thread."""

    __slots__ = ("_set", "source")

    def __init__(self, source: str, compiled: re2.Set) -> None:
        self.source = source
        self._set = compiled

    def search(self, text: str) -> bool:
        """Whether the pattern matches anywhere in ``text`` (ECMA ``RegExp.test``)."""
        # Lone surrogates cannot be UTF-8; passed through, they match no character class.
        return self._set.Match(text.encode("utf-8", "surrogatepass")) is not None


@functools.lru_cache(maxsize=PATTERN_CACHE)
def compile_pattern(source: str) -> Pattern:
    """``source`` compiled for linear-time search.

    Raises:
        PatternError: see the module docstring.
    """
    if len(source) > MAX_PATTERN:
        raise PatternError("pattern too long")
    translated = _UNICODE_ESCAPE.sub(_translate, source)
    # A one-pattern RE2::Set: the bindings' own search() costs ~5 µs a call in Python
    # bookkeeping for match offsets; a set answers only whether it matched (~1 µs).
    compiled = re2.Set.SearchSet(_OPTIONS)
    try:
        compiled.Add(translated)
        compiled.Compile()
    except re2.error as exc:
        raise PatternError("pattern not supported") from exc
    return Pattern(source, compiled)


def _translate(match: re.Match[str]) -> str:
    code = match.group(1)
    return match.group(0) if code is None else f"\\x{{{code}}}"
