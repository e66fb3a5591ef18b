"""Argument types of the ``bastion`` command line: a value argparse cannot use is a usage
error (exit 2, naming the option), never a traceback from deep inside a command (IN-1).

Each function takes the text as given and returns the value, or raises
``argparse.ArgumentTypeError`` with what was expected.
"""

from __future__ import annotations

import argparse
import math
from typing import Final
from urllib.parse import urlsplit

__all__ = ["http_url", "port", "positive_seconds"]

MAX_PORT: Final = 65535


def port(text: str) -> int:
    """A TCP port, 1 to 65535; 0 asks the system for any free one."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= MAX_PORT:
        raise argparse.ArgumentTypeError(
            f"expected a port from 1 to {MAX_PORT} (0: any free one), got {text!r}"
        )
    return value


def positive_seconds(text: str) -> float:
    """A finite number of seconds above zero."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected seconds above 0, got {text!r}")
    return value


def http_url(text: str) -> str:
    """An ``http://`` or ``https://`` URL with a host (and a valid port, if any)."""
    try:
        parts = urlsplit(text)
        usable = parts.scheme.lower() in ("http", "https") and bool(parts.hostname)
        _ = parts.port  # "http://h:99999" or "http://h:x": ValueError
    except ValueError:
        usable = False
    if not usable:
        raise argparse.ArgumentTypeError(
            f"expected an http:// or https:// URL with a host, got {text!r}"
        )
    return text
