"""Text others wrote, made safe to print on a terminal or in one log line (IN-5).

An upstream's error text, its tool names and its stderr, a remote gateway's status report and
a client's audit record all reach a terminal or the log. ``shown`` writes every character
that is not printable (line breaks, ESC and the other C0 and C1 controls, bidi and other
format characters) as its Python escape (``\\x1b``, ``\\n``, ``\\u202e``), so such text can
neither drive the terminal (set its title, clear it, move the cursor) nor start a line of its
own that reads as another log record or another row of a table.
"""

from __future__ import annotations

__all__ = ["shown"]


def shown(value: object) -> str:
    """``str(value)`` with each character that is not printable written as its escape."""
    text = str(value)
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode() for ch in text)
