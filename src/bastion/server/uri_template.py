"""Resource URI templates, matched in time linear in the URI (DS-4, IN-4).

A template is RFC 6570 level 1 and 2, as far as a URI can be matched against it: literal
text, ``{name}`` for one or more characters within a path segment (no ``/``, ``?`` or ``#``)
and ``{+name}`` (reserved expansion) for one or more characters that may span segments (no
``?`` or ``#``), as in ``workspace://{workspace}/{+path}``. Where a URI can be split more than
one way, each variable in turn takes as much as it can (what a backtracking regex answers).

Upstreams write templates and clients write URIs, so neither may cost more than a glance: a
backtracking regex took minutes of the event loop for ``x:{+a}{+b}{+c}{+d}{+e}{+f}{+g}!``
against a few hundred characters. ``UriTemplate.fullmatch`` never backtracks. It works on
the URI's UTF-8 bytes, each set of positions held in a big integer (a bit a position),
and finds, from the last variable back to the first, every position each variable may start
at, with a few whole-integer operations per variable and per literal byte (a carry ripples
through each run of allowed characters); then each variable takes the longest span whose
end the next part can continue from. An 8 KiB URI against the template above takes well
under a millisecond; a literal is found byte by byte or occurrence by occurrence, whichever
costs less, so no template of ``MAX_TEMPLATE`` bytes takes more than a few.

``compile_template`` refuses (``TemplateError``) what it cannot match that way, rather than
raise anything else: braces that do not pair, another RFC 6570 operator (``{?q}``,
``{/p}``, ``{#f}``...), several variables or a modifier in one expression (``{a,b}``,
``{x:3}``, ``{x*}``), a name that is not an RFC 6570 varname or is used twice, more than
``MAX_VARIABLES`` variables, a template over ``MAX_TEMPLATE`` bytes (UTF-8). A URI over
``MAX_URI`` bytes matches no template.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Final

__all__ = [
    "MAX_TEMPLATE",
    "MAX_URI",
    "MAX_VARIABLES",
    "TemplateError",
    "TemplateMatch",
    "UriTemplate",
    "compile_template",
]

MAX_TEMPLATE: Final = 1024  # UTF-8 bytes of a template; real ones are well under 200
MAX_VARIABLES: Final = 16  # variables in a template; real ones have one to five
MAX_URI: Final = 8192  # UTF-8 bytes of a URI tried against templates (as guard.uris)
TEMPLATE_CACHE: Final = 4096  # compiled templates kept (every upstream's, across rebuilds)

_EXPRESSION: Final = re.compile(r"\{([^{}]*)\}")
_VARCHAR: Final = r"(?:[A-Za-z0-9_]|%[0-9A-Fa-f]{2})+"
_VARNAME: Final = re.compile(rf"{_VARCHAR}(?:\.{_VARCHAR})*")
_OPERATORS: Final = frozenset("+#./;?&=,!@|")
_SHOWN: Final = 40  # characters of an expression quoted in an error
# What finding a literal costs, in whole-integer operations on a URI's positions: a pass
# over the URI for a byte (translated and parsed), or one occurrence found by ``find``.
_PASS_COST: Final = 32
_SEARCH_COST: Final = 2

# Where a variable must stop: ``{name}`` at ``/``, ``?``, ``#``; ``{+name}`` at ``?``, ``#``.
_SEGMENT_STOP: Final = re.compile(rb"[/?#]")
_RESERVED_STOP: Final = re.compile(rb"[?#]")


def _table(zero: bytes = b"", one: bytes = b"") -> bytes:
    """A ``bytes.translate`` table to ``1`` for ``one`` (or, without it, all but ``zero``),
    else ``0`` (the digits, for ``int(..., 2)``)."""
    if one:
        return bytes(b"01"[b in one] for b in range(256))
    return bytes(b"01"[b not in zero] for b in range(256))


_SEGMENT_CHARS: Final = _table(zero=b"/?#")
_RESERVED_CHARS: Final = _table(zero=b"?#")
_CHAR_STARTS: Final = _table(zero=bytes(range(0x80, 0xC0)))  # not a UTF-8 continuation
_EQUALS: Final = tuple(_table(one=bytes([b])) for b in range(256))


class TemplateError(ValueError):
    """The template cannot be matched against (module docstring)."""


@dataclass(frozen=True, slots=True)
class TemplateMatch:
    """What a URI matched: each variable's text (the ``re.Match.groupdict`` of a template)."""

    variables: dict[str, str]

    def groupdict(self) -> dict[str, str]:
        return dict(self.variables)


@dataclass(frozen=True, slots=True)
class _Variable:
    name: str
    reserved: bool  # ``{+name}``: may span path segments
    after: bytes  # the literal text that follows it (UTF-8)


@dataclass(frozen=True, slots=True)
class UriTemplate:
    """One compiled template; ``fullmatch`` is its only matching operation."""

    source: str
    head: bytes  # the literal text before the first variable (UTF-8)
    variables: tuple[_Variable, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(v.name for v in self.variables)

    def fullmatch(self, uri: str) -> TemplateMatch | None:
        """The variables when all of ``uri`` matches, else None."""
        if len(uri) > MAX_URI:
            return None
        data = uri.encode("utf-8", "surrogatepass")
        if len(data) > MAX_URI:
            return None
        if not self.variables:
            return TemplateMatch({}) if data == self.head else None
        tail = self.variables[-1].after
        if not data.startswith(self.head) or not data.endswith(tail):
            return None
        if len(data) < len(self.head) + len(tail) + len(self.variables):
            return None
        return _Matcher(data).match(self)


@functools.lru_cache(maxsize=TEMPLATE_CACHE)
def compile_template(source: str) -> UriTemplate:
    """``source`` parsed for matching.

    Raises:
        TemplateError: see the module docstring.
    """
    if len(source) > MAX_TEMPLATE or len(source.encode("utf-8", "surrogatepass")) > MAX_TEMPLATE:
        raise TemplateError(f"template over {MAX_TEMPLATE} bytes")
    literals: list[str] = []
    found: list[tuple[str, bool]] = []
    start = 0
    for expression in _EXPRESSION.finditer(source):
        literals.append(_literal(source[start : expression.start()]))
        found.append(_expression(expression.group(1)))
        start = expression.end()
    literals.append(_literal(source[start:]))
    names = [name for name, _ in found]
    if len(names) > MAX_VARIABLES:
        raise TemplateError(f"more than {MAX_VARIABLES} variables")
    if len(set(names)) < len(names):
        twice = next(name for name in names if names.count(name) > 1)
        raise TemplateError(f"variable {_shown(twice)} used twice")
    variables = tuple(
        _Variable(name, reserved, literals[i + 1].encode("utf-8", "surrogatepass"))
        for i, (name, reserved) in enumerate(found)
    )
    return UriTemplate(source, literals[0].encode("utf-8", "surrogatepass"), variables)


def _literal(text: str) -> str:
    if "{" in text or "}" in text:
        raise TemplateError("braces that do not pair")
    return text


def _expression(body: str) -> tuple[str, bool]:
    """The variable name of ``{body}`` and whether it is reserved expansion (``+``)."""
    reserved = body.startswith("+")
    name = body[1:] if reserved else body
    if not reserved and body[:1] in _OPERATORS:
        raise TemplateError(f"operator {body[0]!r} in {_shown(body)} is not supported")
    if not _VARNAME.fullmatch(name):
        raise TemplateError(f"{_shown(body)} is not one variable name")
    return name, reserved


def _repeats(data: bytes, at: int, size: int, period: int) -> int:
    """The largest ``j`` such that the literal of ``size`` bytes and smallest ``period``
    found at ``at`` is found again at ``at + period``, ..., ``at + j * period``: where
    ``data`` keeps repeating its first ``period`` bytes from ``at`` on."""

    def repeats(j: int) -> bool:
        end = at + j * period + size
        return end <= len(data) and data[at + period : end] == data[at : end - period]

    low, high = 0, 1  # repeats(low) holds; find a high where it does not, then halve
    while repeats(high):
        low, high = high, high * 2
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if repeats(middle) else (low, middle)
    return low


@functools.lru_cache(maxsize=TEMPLATE_CACHE)
def _period(literal: bytes) -> int:
    """The smallest ``p > 0`` with ``literal[i] == literal[i + p]`` throughout (KMP)."""
    border = [0] * len(literal)
    k = 0
    for i in range(1, len(literal)):
        while k and literal[i] != literal[k]:
            k = border[k - 1]
        if literal[i] == literal[k]:
            k += 1
        border[i] = k
    return len(literal) - border[-1]


def _shown(text: str) -> str:
    return repr("{" + text[:_SHOWN] + ("..." if len(text) > _SHOWN else "") + "}")


class _Matcher:
    """One URI's bytes as position sets: a big integer whose bit ``len(data) - p`` stands
    for position ``p`` (``0 <= p <= len(data)``), set when ``p`` is in the set. A carry moves
    from low bits to high ones, so from a position to the ones before it."""

    __slots__ = ("_allowed", "_data", "_equal", "_found", "_n", "_starts", "_unit")

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._n = len(data)
        self._unit = (1 << (self._n + 1)) - 1  # every position
        self._equal: dict[int, int] = {}  # byte -> the positions holding it
        self._found: dict[bytes, int] = {}  # literal -> the positions it starts at
        self._allowed: dict[bool, int] = {}  # reserved -> the positions a variable may hold
        self._starts = self._positions(_CHAR_STARTS) | 1  # the end is a character start too

    def _positions(self, table: bytes) -> int:
        """The positions whose byte ``table`` maps to 1 (never the end): one pass."""
        return int(self._data.translate(table) or b"0", 2) << 1

    def _occurrences(self, literal: bytes) -> int:
        """The positions ``literal`` starts at (every position for an empty one), found
        the cheaper way: byte by byte (a pass for each byte not seen yet, an operation
        for each byte of it), or one occurrence after another."""
        found = self._found.get(literal)
        if found is None:
            fresh = len({byte for byte in literal if byte not in self._equal})
            bytewise = len(literal) + _PASS_COST * fresh
            if literal and self._data.count(literal) * _SEARCH_COST < bytewise:
                found = self._searched(literal)
            else:
                found = self._unit
                for offset, byte in enumerate(literal):
                    equal = self._equal.get(byte)
                    if equal is None:
                        equal = self._equal[byte] = self._positions(_EQUALS[byte])
                    found &= equal << offset
                found &= self._unit
            self._found[literal] = found
        return found

    def _searched(self, literal: bytes) -> int:
        """The positions ``literal`` starts at, found one by one; where the text repeats
        ``literal``'s period, the whole run of repetitions at once."""
        data, period = self._data, _period(literal)
        digits = bytearray(b"0" * (self._n + 1))  # position p is digit p
        at = data.find(literal)
        while at >= 0:
            last = at + period * _repeats(data, at, len(literal), period)
            digits[at : last + 1 : period] = b"1" * ((last - at) // period + 1)
            at = data.find(literal, last + period + 1)
        return int(digits, 2)

    @staticmethod
    def _starts_before(ends: int, allowed: int) -> int:
        """The positions a variable of ``allowed`` characters may start at to end at one of
        ``ends``: each allowed position with an end within its run of allowed ones."""
        seeds = (ends << 1) & allowed  # an allowed character just before an end
        carried = (allowed + seeds) ^ allowed ^ seeds  # from each seed to its run's start
        return allowed & (carried | seeds)

    def match(self, template: UriTemplate) -> TemplateMatch | None:
        n, variables = self._n, template.variables
        # ends[i]: where variable i may end, given that everything after it matches.
        ends = [0] * len(variables)
        ends[-1] = 1 << len(variables[-1].after)  # position n - len(tail)
        for i in range(len(variables) - 1, 0, -1):
            reserved = variables[i].reserved
            allowed = self._allowed.get(reserved)
            if allowed is None:
                table = _RESERVED_CHARS if reserved else _SEGMENT_CHARS
                allowed = self._allowed[reserved] = self._positions(table)
            starts = self._starts_before(ends[i], allowed) & self._starts
            literal = variables[i - 1].after
            ends[i - 1] = self._occurrences(literal) & (starts << len(literal))
        found: dict[str, str] = {}
        position = len(template.head)
        for variable, can_end in zip(variables, ends, strict=True):
            stop_at = _RESERVED_STOP if variable.reserved else _SEGMENT_STOP
            stop = stop_at.search(self._data, position)
            limit = n if stop is None else stop.start()
            # The last end in (position, limit]: the lowest set bit from n - limit up.
            window = (can_end >> (n - limit)) & ((1 << (limit - position)) - 1)
            if not window:
                return None
            end = limit - ((window & -window).bit_length() - 1)
            found[variable.name] = self._data[position:end].decode("utf-8", "surrogatepass")
            position = end + len(variable.after)
        return TemplateMatch(found) if position == n else None
