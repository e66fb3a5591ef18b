"""IN-5: text others wrote (an upstream's error, its stderr, its tool names) reaches a
terminal or the log only escaped: no escape sequence drives the terminal, no line break
starts a line that reads as another record or another row."""

from __future__ import annotations

import io
import logging
import sys

import pytest

from bastion._shown import shown
from bastion.cli.log_setup import LOG_FORMAT, OneLineFormatter
from bastion.upstream.reasons import MAX_REASON, clean_reason

HOSTILE = (
    "boom \x1b]0;PWNED\x07\x1b[2J\r\n2026-01-01 00:00:00,000 WARNING bastion.auth: FORGED"
    "\x9b31m \u202egnp.exe\u2028"
)


def test_shown_escapes_every_character_that_is_not_printable_IN5() -> None:
    text = shown(HOSTILE)
    assert text.isprintable()
    assert "\\x1b]0;PWNED\\x07\\x1b[2J\\r\\n2026-01-01" in text
    assert "\\x9b31m" in text and "\\u202e" in text and "\\u2028" in text
    assert shown("plain ünïcode text, tabs aside") == "plain ünïcode text, tabs aside"


def _formatted(message: str, *args: object, exc: BaseException | None = None) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(OneLineFormatter(LOG_FORMAT))
    logger = logging.getLogger("tests.cli.log_lines")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        exc_info = (type(exc), exc, exc.__traceback__) if exc is not None else None
        logger.warning(message, *args, exc_info=exc_info)
    finally:
        logger.removeHandler(handler)
    return stream.getvalue()


def test_a_log_record_quoting_upstream_text_is_one_line_IN5() -> None:
    out = _formatted("upstream %s stopped: %s", "evil", HOSTILE)
    assert out.count("\n") == 1 and out.endswith("\n")
    assert "\x1b" not in out and "\r" not in out and "\x9b" not in out
    assert "FORGED" in out and "\\r\\n2026-01-01" in out


def test_a_traceback_cannot_start_a_line_at_the_margin_IN5() -> None:
    try:
        raise ValueError(HOSTILE)
    except ValueError as exc:
        error = exc
    lines = _formatted("upstream %s failed unexpectedly", "evil", exc=error).splitlines()
    assert "upstream evil failed unexpectedly" in lines[0]
    assert len(lines) > 2
    # Every line after the record's own is indented: none reads as a record of its own.
    assert all(line.startswith("    ") for line in lines[1:])
    assert not any("\x1b" in line or "\r" in line for line in lines)


def test_clean_reason_leaves_no_control_character_IN5() -> None:
    reason = clean_reason("PeerError: " + HOSTILE * 40, [])
    assert reason.isprintable() or reason.endswith("…")
    assert "\x1b" not in reason and "\n" not in reason and "\r" not in reason
    assert len(reason) <= MAX_REASON + 1


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX terminal escapes")
def test_shown_keeps_backslashes_as_they_are_IN5() -> None:
    # A literal backslash is printable: it is not doubled, and the result stays one line.
    assert shown("C:\\path\\x1b") == "C:\\path\\x1b"
