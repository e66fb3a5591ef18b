"""The values an argument condition tests: every one an upstream may read at its path (AZ-1).

A client picks the shape of its arguments, and an upstream may read another shape than a
rule was written for: ``["secret/key"]`` where the rule expects a string, ``{"opts.mode":
777}`` for ``opts.mode``, ``"5000"`` for a number. So a condition's path ``a.b`` leads to
every value ``reach`` finds:

- ``arguments["a"]["b"]``, and also a key that itself holds the dots (``arguments["a.b"]``);
- an array on the way or at the end is read element by element (nested arrays too): its
  elements are the values (``paths: ["a", "b"]`` is two values; ``[]`` none);
- for a deny, an object at the end is read as its values as well (``{"0": "secret/key"}``);
  for an allow it stays one value, which no test passes.

``Reached.complete`` says whether the plain nested reading (``a`` then ``b``, through every
element of an array on the way) found a value everywhere: an allow needs it, so a value
hidden under a dotted key, or missing from one element, never satisfies an allow.

More than ``MAX_ARG_VALUES`` steps (elements and object values read, keys tried) is
``Reached.overflow``:
a deny then holds and an allow fails, so size cannot hide a value.

``scalar_of`` and ``number_of`` are the readings a deny also gives a string: the JSON scalar
it spells (``"777"`` is 777, ``"true"`` is true, ``"null"`` null) and, for the numeric
bounds, the number (a whole decimal number: optional sign, digits, optional fraction and
exponent; no spaces, ``_``, hex, ``NaN`` or ``Infinity`` words; one too large for a double
reads as infinity, as it does to most upstreams).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final, NamedTuple

__all__ = ["MAX_ARG_VALUES", "NOT_A_SCALAR", "Reached", "number_of", "reach", "scalar_of"]

MAX_ARG_VALUES: Final = 10_000
_NUMBER: Final = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_WORDS: Final[dict[str, object]] = {"true": True, "false": False, "null": None}
NOT_A_SCALAR: Final = object()
_ABSENT: Final = object()
_SCALARS: Final = (str, int, float, bool, type(None))


class Reached(NamedTuple):
    values: list[object]
    complete: bool
    overflow: bool


def reach(arguments: Mapping[str, object], path: str, *, deny: bool) -> Reached:
    """Every value at ``path`` in ``arguments`` (module docstring), in document order."""
    plain = _plain(arguments, path)
    if plain is not _ABSENT:
        return Reached([plain], complete=True, overflow=False)
    names = path.split(".")
    end = len(names)
    values: list[object] = []
    complete = True
    steps = 0
    # (node, names consumed, reached by the plain nested reading)
    stack: list[tuple[object, int, bool]] = [(arguments, 0, True)]
    while stack:
        node, at, plain = stack.pop()
        items: list[object] | None = None
        if isinstance(node, list):
            items = node
        elif at == end and deny and isinstance(node, Mapping):
            items = list(node.values())
        if items is not None:
            steps += len(items)
            if steps > MAX_ARG_VALUES:
                return Reached(values, complete, overflow=True)
            stack.extend((item, at, plain) for item in reversed(items))
        elif at == end:
            values.append(node)
        elif not isinstance(node, Mapping):
            complete = complete and not plain
        else:
            if plain and names[at] not in node:
                complete = False
            found = []
            for stop in range(at + 1, end + 1):
                steps += 1
                key = names[at] if stop == at + 1 else ".".join(names[at:stop])
                if key in node:
                    found.append((node[key], stop, plain and stop == at + 1))
            if steps > MAX_ARG_VALUES:
                return Reached(values, complete, overflow=True)
            stack.extend(reversed(found))
    return Reached(values, complete, overflow=False)


def _plain(arguments: Mapping[str, object], path: str) -> object:
    """The usual case, quickly: the scalar at ``path`` when every step is a dict that has
    the next name and no key spelling several names at once; else ``_ABSENT`` (``reach``
    then looks at every reading)."""
    if "." not in path:
        node = arguments.get(path, _ABSENT)
        return node if isinstance(node, _SCALARS) else _ABSENT
    names = path.split(".")
    node = arguments
    for at, name in enumerate(names):
        if not isinstance(node, dict) or name not in node:
            return _ABSENT
        for stop in range(at + 2, len(names) + 1):
            if ".".join(names[at:stop]) in node:
                return _ABSENT
        node = node[name]
    return node if isinstance(node, _SCALARS) else _ABSENT


def scalar_of(text: str) -> object:
    """The JSON scalar ``text`` spells, else ``NOT_A_SCALAR``."""
    if text in _WORDS:
        return _WORDS[text]
    number = number_of(text)
    return NOT_A_SCALAR if number is None else number


def number_of(text: str) -> float | None:
    """The number ``text`` is, wholly (module docstring), else None."""
    if _NUMBER.fullmatch(text) is None:
        return None
    return float(text)
