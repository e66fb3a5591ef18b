"""Markdown images in one string (TC-4): inline ``![alt](url "title")``, full, collapsed and
shortcut references (``![alt][ref]``, ``![alt][]``, ``![alt]``) with their ``[ref]: url``
definition in the same string. ``markdown_removals`` returns those a ``Decide`` says go.

Renderers differ, so this reads more as images than CommonMark does, never fewer:

* Brackets pair as CommonMark pairs them (each ``]`` takes the nearest open ``[`` or
  ``![``, backslash escapes excepted, a blank line closing them all), but a code span, an
  autolink, raw HTML or an inner link's destination in the alt text can hold a ``]`` a
  renderer skips. So while an ``![`` is open, and once one has been paired without making an
  image with a ``]`` that may be such (its alt text has a backtick, ``<`` or ``](``, or is
  longer than a label), every later link in the paragraph is read as an image too: a link
  with a data URL there loses it as well. ``vec![1, 2]`` alone changes nothing.
* Whitespace (one line break at most) may stand between ``]`` and ``(`` or ``[``; inside the
  parentheses whitespace and line breaks may surround the destination. After a line break,
  block quote markers (``>``) are skipped as the renderer strips them, also in a reference
  definition, which may stand after block quote or list markers. An angle-bracket
  destination (``<url>``) is read without its brackets. When what follows the destination is
  not a title and ``)``, the rest of the line up to the closing parenthesis is read as URL
  too (a renderer lenient about spaces would fetch it).
* Code spans and fenced code are not exempt: an image shown as an example loses its data
  URL all the same.

The work is linear in the text and bounded: the scan starts at a paragraph's first ``![``,
each bracket and each parenthesis of a destination is one unit of work and each image read
``SOURCE_WORK`` more, and a destination is read for at most ``READ`` characters (a longer
one carries data anyway). Past ``MAX_WORK`` units the reader stops and says so; the
caller then breaks every image of the string.
"""

from __future__ import annotations

import re
from typing import Final, NamedTuple

from bastion.guard._image_urls import (
    MAX_PLAIN_URL,
    MAX_WORK,
    READ,
    SOURCE_WORK,
    Decide,
    Found,
    Removal,
    Source,
    markdown_destination,
    read_source,
)

__all__ = ["markdown_removals"]

MAX_DEFINITIONS: Final = 10_000  # reference definitions read per string
MAX_LABEL: Final = 999  # characters in a link label (CommonMark)
MAX_TITLE: Final = 2048  # characters read after a destination for its title and ")"
_UNREAD: Final = Source(remote=True, carries_data=True)  # a definition past the limit
# Escapes first, so "\[" is no bracket and "\![" no image; a blank line ends a paragraph.
_EVENT: Final = re.compile(r"\\[\\\[\]!]|!\[|[\[\]]|\n[ \t]*\n")
_DESTINATION: Final = re.compile(r"\\[!-/:-@\[-`{-~]|[()]|\s")
_HIDING: Final = ("`", "<", "](")  # what can hold a "]" that is no bracket
# Whitespace, line breaks and, after a line break, a block quote's or list's markers (a
# renderer strips "> " before reading the line on); possessive, so nothing backtracks.
_GAP: Final = r"[ \t]*+(?:\n[ \t>]*+)*+"
_FOLLOW: Final = re.compile(r"[ \t]*+(?:\n[ \t>]*+)?([(\[])?")
_SPACE: Final = re.compile(_GAP)
_ANGLE: Final = re.compile(r"<([^<>\n]*)>")
_TITLE_AND_CLOSE: Final = re.compile(rf"""{_GAP}(?:"[^"]*"|'[^']*'|\([^()]*\))?{_GAP}\)""")
_LABEL: Final = re.compile(rf"((?:[^\[\]\\]|\\.){{0,{MAX_LABEL}}})\]", re.DOTALL)
_DEFINITION: Final = re.compile(  # at a line's start, after any block quote or list markers
    rf"^[ \t>*+\-0-9.)]{{0,40}}\[((?:[^\[\]\\]|\\.){{1,{MAX_LABEL}}})\]:"
    rf"[ \t]*+(?:\n[ \t>]*+)?(<[^<>\n]*>|\S+)",
    re.MULTILINE,
)
_LINE_BREAK: Final = re.compile(r"\n[ \t>]*")


class _Opener(NamedTuple):
    at: int
    bang: bool  # "![" rather than "["


def markdown_removals(text: str, decide: Decide) -> Found:
    """The Markdown images of ``text`` that ``decide`` removes, nested ones included."""
    return _Reader(text, decide).removals()


class _Reader:
    def __init__(self, text: str, decide: Decide) -> None:
        self._text = text
        self._decide = decide
        self._work = 0
        self._tails: dict[int, int | None] = {}
        self._definitions: dict[str, list[str]] | None = None
        self._defined: dict[str, Source | None] = {}
        self._all_defined = True

    def removals(self) -> Found:
        text = self._text
        found: list[Removal] = []
        stack: list[_Opener] = []
        open_bangs = 0
        stray = False  # an "![" here paired with a "]" that may not have been its own
        # Nothing before a paragraph's first "![" can make an image (read from its line's
        # start, so a backslash before it escapes it).
        at = _line_of(text, text.find("!["))
        while at >= 0 and (event := _EVENT.search(text, at)) is not None:
            at = event.end()
            self._work += 1
            if self._work > MAX_WORK:
                return Found(found, complete=False)
            mark = event.group()
            if mark[0] == "\n":
                stack.clear()
                open_bangs, stray = 0, False
                at = _line_of(text, text.find("![", at))
            elif mark in ("![", "["):
                stack.append(_Opener(event.start(), mark == "!["))
                open_bangs += mark == "!["
            elif mark == "]":
                opener = stack.pop() if stack else None
                bang = opener is not None and opener.bang
                open_bangs -= bang
                if not (bang or open_bangs or stray):
                    continue  # a link, not an image
                read = self._construct(opener, event.start())
                self._work += SOURCE_WORK
                if read is None:
                    stray = stray or (bang and self._hides_brackets(opener, event.start()))
                elif self._decide(read[1]):
                    start = opener.at if opener is not None else event.start()
                    found.append(Removal(start, read[0], read[1].host, read[2]))
        return Found(found)

    def _hides_brackets(self, opener: _Opener | None, close: int) -> bool:
        """Whether the text between ``opener`` and ``close`` may hold a ``]`` a renderer
        does not count: in a code span, an autolink or raw HTML, or the destination of a
        link inside (so ``close`` may not be the one that ends this "![" for it)."""
        if opener is None:
            return False
        first = opener.at + 2
        if close - first > MAX_LABEL:
            return True
        text = self._text
        return any(text.find(mark, first, close) >= 0 for mark in _HIDING)

    def _construct(self, opener: _Opener | None, close: int) -> tuple[int, Source, str] | None:
        """What the ``]`` at ``close`` ends, if it can end an image: (end, source, alt)."""
        text = self._text
        alt: str | None = None  # unknown without an opener; cut past MAX_LABEL
        if opener is not None:
            first = opener.at + 1 + opener.bang
            alt = text[first : min(close, first + MAX_LABEL + 1)]
        follow = _FOLLOW.match(text, close + 1)
        assert follow is not None  # every part of the pattern is optional
        if follow.group(1) == "(":
            end, source = self._inline(follow.end())
            return end, source, alt or ""
        label, end = alt, close + 1
        if follow.group(1) == "[":
            written = _LABEL.match(text, follow.end())
            if written is None:
                return None
            label, end = written.group(1) or alt, written.end()
        if not label or len(label) > MAX_LABEL:
            return None
        defined = self._definition(label)
        return None if defined is None else (end, defined, alt or "")

    def _inline(self, after: int) -> tuple[int, Source]:
        """The end and source of an inline destination whose "(" is just before ``after``."""
        text = self._text
        start = _SPACE.match(text, after).end()  # type: ignore[union-attr]
        angle = _ANGLE.match(text, start, start + READ + 2) if text.startswith("<", start) else None
        if angle is not None:
            url_start, url_end, dest_end = start + 1, angle.end() - 1, angle.end()
        else:
            url_start, url_end = start, self._destination_end(start)
            dest_end = url_end
        end = self._title_end(dest_end)
        if end is None:  # not (url "title"): read on to ")" on this line, as a lenient renderer
            line_end = text.find("\n", dest_end, dest_end + READ)
            line_end = line_end if line_end >= 0 else min(len(text), dest_end + READ)
            close = text.find(")", dest_end, line_end)
            url_end = max(url_end, close if close >= 0 else line_end)
            end = close + 1 if close >= 0 else dest_end
        raw = text[url_start : min(url_end, url_start + READ)]
        longer = url_end - url_start > MAX_PLAIN_URL
        return end, read_source(markdown_destination(raw), longer=longer)

    def _destination_end(self, start: int) -> int:
        """Where a destination starting at ``start`` ends: at whitespace or at a ")" it did
        not open, read for at most ``READ`` characters (a longer one carries data)."""
        text = self._text
        stop = min(len(text), start + READ)
        depth = 0
        for part in _DESTINATION.finditer(text, start, stop):
            self._work += 1
            mark = part.group()
            if mark == "(":
                depth += 1
            elif mark == ")" and depth:
                depth -= 1
            elif mark == ")" or mark.isspace():
                return part.start()
        return stop

    def _title_end(self, dest_end: int) -> int | None:
        """Where an optional title and the closing ")" after ``dest_end`` end, if they do.
        Remembered: destinations nested in one another's may end at the same place."""
        if dest_end not in self._tails:
            text = self._text
            tail = _TITLE_AND_CLOSE.match(text, dest_end, min(len(text), dest_end + MAX_TITLE))
            self._tails[dest_end] = None if tail is None else tail.end()
        return self._tails[dest_end]

    def _definition(self, label: str) -> Source | None:
        """The source ``[label]: url`` defines in this text. A renderer takes the first
        definition that is one (a line inside a paragraph is none), which this reader does
        not tell apart: of all lines defining the label, the first source to be removed
        stands for them. Past ``MAX_DEFINITIONS`` lines, any label may be defined by one
        not read."""
        if self._definitions is None:
            self._definitions = {}
            for count, match in enumerate(_DEFINITION.finditer(self._text)):
                if count == MAX_DEFINITIONS:
                    self._all_defined = False
                    break
                key = _normalised(match.group(1))
                self._definitions.setdefault(key, []).append(match.group(2))
        key = _normalised(label)
        if key not in self._defined:
            sources = [_defined_source(raw) for raw in self._definitions.get(key, ())]
            if not self._all_defined:
                sources.append(_UNREAD)
            removed = [source for source in sources if self._decide(source)]
            chosen = removed or sources
            self._defined[key] = chosen[0] if chosen else None
        return self._defined[key]


def _defined_source(raw: str) -> Source:
    """The source a definition's destination (``<url>`` or ``url``) names."""
    raw = raw[1:-1] if raw.startswith("<") else raw
    return read_source(markdown_destination(raw[:READ]), longer=len(raw) > MAX_PLAIN_URL)


def _line_of(text: str, at: int) -> int:
    """Where the line holding ``at`` starts (-1 for -1)."""
    return at if at < 0 else text.rfind("\n", 0, at) + 1


def _normalised(label: str) -> str:
    """A link label as CommonMark compares them: whitespace collapsed, case folded (and a
    block quote's markers after a line break dropped, as the renderer drops them)."""
    if "\n" in label:
        label = _LINE_BREAK.sub(" ", label)
    return " ".join(label.split()).casefold()
