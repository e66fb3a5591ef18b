"""Durations as people write them in configuration and on the command line: ``90s``, ``15m``,
``12h``, ``30d`` (or bare seconds). One parser, so ``bastion keys create --expires`` and
``auth.break_glass.max_ttl`` agree on what a duration is."""

from __future__ import annotations

import re
from typing import Final

__all__ = ["DURATION_PATTERN", "parse_duration"]

DURATION_PATTERN: Final = r"^[0-9]{1,7}[smhd]?$"
_DURATION: Final = re.compile(DURATION_PATTERN)
_UNIT: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> int:
    """Seconds in ``text`` (``30d``, ``12h``, ``15m``, ``90s``, ``90``).

    Raises:
        ValueError: not a number followed by an optional unit of s, m, h or d.
    """
    text = text.strip()
    if not _DURATION.fullmatch(text):
        raise ValueError(f"not a duration: {text[:32]!r} (write e.g. 30d, 12h, 15m, 90s)")
    unit = text[-1] if text[-1] in _UNIT else "s"
    number = text[:-1] if text[-1] in _UNIT else text
    return int(number) * _UNIT[unit]
