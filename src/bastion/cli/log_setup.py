"""The log every ``bastion`` command writes on stderr: one line per record, whatever the
record quotes (IN-5).

Much of what is logged was written by someone else: an upstream's error text and stderr
lines, its tool and prompt names, a client's request. ``OneLineFormatter`` writes each
character of a message that is not printable as its escape (``bastion._shown``), so no such
text can set the terminal's title, clear it, or start a line that reads as a record of its
own (``2026-01-01 ... WARNING bastion.auth: ...``). A traceback keeps its lines, each
indented and escaped the same way: every line that starts at the margin is a record.
"""

from __future__ import annotations

import logging
import sys
from typing import Final

from bastion._shown import shown

__all__ = ["LOG_FORMAT", "OneLineFormatter", "configure_logging"]

LOG_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_INDENT: Final = "    "


class OneLineFormatter(logging.Formatter):
    """A formatter whose records each start one line at the margin (see the module)."""

    def format(self, record: logging.LogRecord) -> str:
        # A traceback another handler's formatter cached on the record is not escaped.
        cached, record.exc_text = record.exc_text, None
        try:
            return super().format(record)
        finally:
            record.exc_text = cached

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = shown(record.message)
        return super().formatMessage(record)

    def formatException(self, ei: logging._SysExcInfoType) -> str:
        return _indented(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return _indented(super().formatStack(stack_info))


def _indented(text: str) -> str:
    return "\n".join(_INDENT + shown(line) for line in text.split("\n"))


def configure_logging(verbosity: int) -> None:
    """Records at WARNING and above on stderr; INFO with ``-v``, DEBUG with ``-vv``."""
    level = logging.WARNING if verbosity == 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(OneLineFormatter(LOG_FORMAT))
    logging.basicConfig(level=level, handlers=[handler])
