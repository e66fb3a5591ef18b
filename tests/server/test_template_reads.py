"""DS-4, IN-4 at the registry: ``ServerApp.find_resource``, which every ``resources/read``
runs on the event loop (twice for a miss), answers a pathological template and an 8 KB URI
at once, keeps its templates' meaning, and takes no template it cannot match.

Before, ``x:{+a}{+b}{+c}{+d}{+e}{+f}{+g}!`` against ``x:`` and 60 ``a`` took 15 s (red
team t), and ``add_template`` raised ``re.error`` for ``{a}{a}`` or ``file:///{1}``.
"""

from __future__ import annotations

import time

import pytest

from bastion._types import JSONObject
from bastion.protocol import types as t
from bastion.server.context import ToolContext
from bastion.server.registry import ServerApp

pytestmark = pytest.mark.timeout(30)

BOUND = 0.05  # seconds: generous (about a millisecond here); a backtracking regex: hours


async def _read(ctx: ToolContext, uri: str, found: dict[str, str]) -> list[JSONObject]:
    return []


def _app(*templates: str) -> ServerApp:
    app = ServerApp(name="s", version="1")
    for text in templates:
        app.add_template(t.ResourceTemplate(uriTemplate=text, name=text), _read)
    return app


@pytest.mark.parametrize(
    ("uri", "variables"),
    [
        ("x:" + "a" * 8188 + "?!", None),
        ("x:" + "a" * 8189 + "!", {"a": "a" * 8183, **{v: "a" for v in "bcdefg"}}),
        ("note://" + "a/" * 4091 + "a?", None),
        ("note://" + "a/" * 4092 + "a", {"a": "a/" * 4089 + "a", "b": "a", "c": "a", "d": "a"}),
    ],
)
def test_ds4_find_resource_answers_a_pathological_template_and_an_8kb_uri_at_once(
    uri: str, variables: dict[str, str] | None
) -> None:
    app = _app("x:{+a}{+b}{+c}{+d}{+e}{+f}{+g}!", "note://{+a}/{+b}/{+c}/{+d}")
    assert len(uri) in (8191, 8192)
    started = time.perf_counter()
    found = app.find_resource(uri)
    elapsed = time.perf_counter() - started
    assert elapsed < BOUND, f"{elapsed:.3f} s"
    assert (found and found[1]) == variables


def test_in4_add_template_takes_odd_names_and_leaves_out_what_it_cannot_match() -> None:
    app = _app("dup://{a}/{a}", "open://{a", "file:///{1}", "ws://{workspace}/{+path}")
    assert [e.template.uriTemplate for e in app.templates] == [
        "file:///{1}",
        "ws://{workspace}/{+path}",
    ]
    assert app.find_resource("file:///etc") == (_read, {"1": "etc"})
    assert app.find_resource("ws://demo/src/a.py") == (
        _read,
        {"workspace": "demo", "path": "src/a.py"},
    )
    assert app.find_resource("ws://demo/a?x") is None
