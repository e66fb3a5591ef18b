"""Resource templates (DS-4, IN-4): RFC 6570 level 1 ``{var}`` and level 2 ``{+var}`` match
as before, in time linear in the URI, and a template that cannot be matched is refused
without raising anything but ``TemplateError``.

Before, every template became a Python regex (``[^/?#]+`` per ``{var}``, ``[^?#]+`` per
``{+var}``), matched on the event loop: ``x:{+a}{+b}{+c}{+d}{+e}{+f}{+g}!`` against
``x:`` and 60 ``a`` froze a gateway for 15 s, against 120 for hours (red teams t, v), and a
template such as ``{a}{a}`` or ``file:///{1}`` raised ``re.error`` out of a catalog rebuild.
"""

from __future__ import annotations

import logging
import random
import re
import time

import pytest

from bastion._types import JSONObject
from bastion.protocol import types as t
from bastion.server.context import ToolContext
from bastion.server.registry import ServerApp, TemplateEntry
from bastion.server.uri_template import (
    MAX_TEMPLATE,
    MAX_URI,
    MAX_VARIABLES,
    TemplateError,
    compile_template,
)

KB8 = 8192
BOUND = 0.05  # seconds: generous; the matcher takes about a millisecond on these


async def _read(ctx: ToolContext, uri: str, found: dict[str, str]) -> list[JSONObject]:
    return []


def _variables(template: str, uri: str) -> dict[str, str] | None:
    found = compile_template(template).fullmatch(uri)
    return None if found is None else found.groupdict()


@pytest.mark.parametrize(
    ("template", "uri", "variables"),
    [
        ("test://template/{id}/data", "test://template/42/data", {"id": "42"}),
        ("test://template/{id}/data", "test://template/4/2/data", None),
        (
            "workspace://{workspace}/{+path}",
            "workspace://demo/src/a.py",
            {"workspace": "demo", "path": "src/a.py"},
        ),
        (
            "ws://{workspace}/{+path}",
            "ws://demo/src/pkg/app.py",
            {"workspace": "demo", "path": "src/pkg/app.py"},
        ),
        ("ws://{workspace}/{+path}", "ws://de/mo", {"workspace": "de", "path": "mo"}),
        ("ws://{workspace}/{+path}", "ws://demo/a?x", None),
        ("ws://{workspace}/{+path}", "ws://demo/", None),  # a variable is never empty
        ("db://{table}/{id}", "db://users/7", {"table": "users", "id": "7"}),
        ("file:///{+path}", "file:///etc/x#frag", None),
        ("y:{+dir}/{+name}.txt", "y:a/b/c.txt", {"dir": "a/b", "name": "c"}),  # greedy, in turn
        ("x:{+a}{+b}!", "x:abc!", {"a": "ab", "b": "c"}),
        ("note://{id}", "note://caf\u00e9\U0001f600", {"id": "caf\u00e9\U0001f600"}),
        ("u:{a}{b}", "u:\u00e9\U0001f600", {"a": "\u00e9", "b": "\U0001f600"}),  # whole characters
        ("file:///{1}", "file:///x", {"1": "x"}),  # an odd name, valid in RFC 6570
        ("a:{user.id}/{x%41}", "a:7/8", {"user.id": "7", "x%41": "8"}),
        ("static://one", "static://one", {}),
        ("static://one", "static://two", None),
    ],
)
def test_in4_level_1_and_2_templates_match_as_before(
    template: str, uri: str, variables: dict[str, str] | None
) -> None:
    assert _variables(template, uri) == variables


def _backtracking(template: str) -> re.Pattern[str]:
    """The matcher Bastion had (a backtracking regex): the reference on short URIs."""
    parts = re.split(r"\{(\+?[A-Za-z0-9_]+)\}", template)
    pieces = [
        re.escape(p)
        if i % 2 == 0
        else f"(?P<{p.lstrip('+')}>{'[^?#]+' if p[0] == '+' else '[^/?#]+'})"
        for i, p in enumerate(parts)
    ]
    return re.compile("".join(pieces))


def test_in4_every_split_agrees_with_the_backtracking_regex_on_short_uris() -> None:
    """Random templates and URIs over a small alphabet (separators, multi-byte characters,
    a lone surrogate): the same matches, the same variables."""
    rng = random.Random(6570)
    alphabet = ["a", "b", "/", "?", "#", "\u00e9", "ab", "/a", "\U0001f600", "\ud800", "\n"]
    tried = matched = 0
    for _ in range(3000):
        count = rng.randint(0, 4)
        literals = ["".join(rng.choices(alphabet, k=rng.randint(0, 2))) for _ in range(count + 1)]
        template = literals[0] + "".join(
            f"{{{rng.choice(['', '+'])}v{i}}}{literals[i + 1]}" for i in range(count)
        )
        reference = _backtracking(template)
        for _ in range(8):
            if rng.random() < 0.5:
                uri = "".join(rng.choices(alphabet, k=rng.randint(0, 10)))
            else:
                fills = ["".join(rng.choices(alphabet, k=rng.randint(1, 3))) for _ in range(count)]
                uri = literals[0] + "".join(f + literals[i + 1] for i, f in enumerate(fills))
            expected = reference.fullmatch(uri)
            assert _variables(template, uri) == (expected and expected.groupdict()), (template, uri)
            tried, matched = tried + 1, matched + (expected is not None)
    assert matched > tried // 10  # the comparison covered matches, not only misses


@pytest.mark.parametrize(
    ("template", "miss", "hit", "first"),
    [
        (
            "x:{+a}{+b}{+c}{+d}{+e}{+f}{+g}!",
            "x:" + "a" * (KB8 - 4) + "?!",
            "x:" + "a" * (KB8 - 3) + "!",
            KB8 - 9,
        ),
        (
            "note://{+a}/{+b}/{+c}/{+d}",
            "note://" + "a/" * 4090 + "a?",
            "note://" + "a/" * 4092 + "a",
            KB8 - 13,
        ),
        (
            "y:{+dir}/{+name}.txt",
            "y:" + "/" * (KB8 - 8) + "?a.txt",
            "y:" + "/" * (KB8 - 7) + "a.txt",
            KB8 - 8,
        ),
        (
            "z:" + "".join(f"{{+v{i}}}a" for i in range(MAX_VARIABLES)),
            "z:" + "a" * 100 + "?" + "a" * (KB8 - 103),
            "z:" + "a" * (KB8 - 2),
            KB8 - 2 - 2 * MAX_VARIABLES + 1,
        ),
        (
            "w:{+a}" + "ab" * 500 + "{+b}",
            "w:" + "ab" * 4094 + "?",
            "w:x" + "ab" * 4094 + "y",
            KB8 - 1003,
        ),
    ],
)
def test_ds4_a_pathological_template_and_an_8kb_uri_match_or_miss_at_once(
    template: str, miss: str, hit: str, first: int
) -> None:
    """DS-4: each answer within ``BOUND`` (a backtracking regex took hours on these)."""
    compiled = compile_template(template)
    for uri, should_match in ((miss, False), (hit, True)):
        assert len(uri.encode()) <= KB8
        started = time.perf_counter()
        found = compiled.fullmatch(uri)
        elapsed = time.perf_counter() - started
        assert elapsed < BOUND, f"{elapsed * 1000:.1f} ms for {template[:30]!r}"
        assert (found is not None) is should_match
        if found is not None:
            assert len(next(iter(found.groupdict().values()))) == first  # greedy, as before


def test_ds4_a_uri_over_the_limit_matches_no_template() -> None:
    compiled = compile_template("file:///{+path}")
    assert compiled.fullmatch("file:///" + "a" * (MAX_URI - 8)) is not None
    assert compiled.fullmatch("file:///" + "a" * (MAX_URI - 7)) is None
    assert compiled.fullmatch("file:///" + "\u00e9" * (MAX_URI // 2)) is None  # bytes count


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ("dup://{a}/{a}", "used twice"),
        ("open://{a", "braces that do not pair"),
        ("open://a}", "braces that do not pair"),
        ("x://{{a}}", "braces that do not pair"),
        ("q://x{?query}", "operator '?'"),
        ("p://x{/path}", "operator '/'"),
        ("f://x{#frag}", "operator '#'"),
        ("m://{a,b}", "not one variable name"),
        ("m://{a:3}", "not one variable name"),
        ("m://{a*}", "not one variable name"),
        ("e://{}", "not one variable name"),
        ("s://{a b}", "not one variable name"),
        ("n://" + "".join(f"{{v{i}}}/" for i in range(MAX_VARIABLES + 1)), "more than"),
        ("l://" + "a" * MAX_TEMPLATE, f"over {MAX_TEMPLATE} bytes"),
    ],
)
def test_in4_a_template_that_cannot_be_matched_is_refused_with_a_reason(
    template: str, problem: str
) -> None:
    with pytest.raises(TemplateError, match=re.escape(problem)):
        compile_template(template)


def test_in4_building_a_refused_template_never_raises_and_it_is_left_out(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """IN-4: an upstream's odd template is logged and matches nothing; a server's own
    ``add_template`` leaves it out of the list."""
    app = ServerApp(name="s", version="1")
    with caplog.at_level(logging.WARNING, logger="bastion.server.registry"):
        for text in ("dup://{a}/{a}", "open://{a", "q://x{?query}"):
            entry = TemplateEntry.build(t.ResourceTemplate(uriTemplate=text, name="x"), _read)
            assert entry.refused and entry.pattern.fullmatch(text) is None
            app.add_template(t.ResourceTemplate(uriTemplate=text, name="x"), _read)
        app.add_template(t.ResourceTemplate(uriTemplate="file:///{1}", name="ok"), _read)
    assert [e.template.uriTemplate for e in app.templates] == ["file:///{1}"]
    assert app.find_resource("file:///etc") == (_read, {"1": "etc"})
    assert app.find_resource("dup://x/x") is None
    refusals = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(refusals) == 6 and "used twice" in refusals[0]
