"""Completion values a caller may be shown (AZ-2, ``server.completions``): each value of a
one-variable template is expanded into the URI it names (RFC 6570 simple or reserved) and
kept only when the caller may read it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from bastion._types import JSONObject
from bastion.protocol import types as t
from bastion.server.completions import MAX_VALUES, shown_values
from bastion.server.registry import TemplateEntry
from bastion.session.peer import Call


class _Policed(Call):
    """A call whose caller may read the URIs in ``readable``; ``asked`` notes every URI."""

    def __init__(self, readable: set[str]) -> None:
        self.readable = readable
        self.asked: list[str] = []

    def shown(self, kind: Literal["tool", "prompt", "resource"]) -> Callable[[str], bool]:
        def may_see(uri: str) -> bool:
            self.asked.append(uri)
            return uri in self.readable

        return may_see


async def _read(ctx: object, uri: str, variables: dict[str, str]) -> list[JSONObject]:
    return []


def _templates(*uris: str) -> list[TemplateEntry]:
    return [TemplateEntry.build(t.ResourceTemplate(uriTemplate=u, name="x"), _read) for u in uris]


TEMPLATES = _templates("note://{id}", "file:///{+path}", "pair://{a}/{b}")


def _complete(uri: str, values: list[str], call: Call, **more: object) -> JSONObject:
    completion: JSONObject = {"values": values, "total": len(values), **more}  # type: ignore[dict-item]
    return shown_values(completion, {"type": "ref/resource", "uri": uri}, TEMPLATES, call)


def test_az2_each_value_is_decided_as_the_uri_it_expands_to_AZ2() -> None:
    call = _Policed({"note://a%2Fb", "file:///docs/read%20me", "file:///docs/ok"})
    simple = _complete("note://{id}", ["a/b", "secret"], call)
    assert simple == {"values": ["a/b"], "total": 1}
    reserved = _complete("file:///{+path}", ["docs/read me", "docs/.env", "docs/ok"], call)
    assert reserved["values"] == ["docs/read me", "docs/ok"] and reserved["total"] == 2
    assert call.asked == [
        "note://a%2Fb",
        "note://secret",
        "file:///docs/read%20me",
        "file:///docs/.env",
        "file:///docs/ok",
    ]


def test_az2_a_total_counts_nothing_withheld_while_more_values_follow_AZ2() -> None:
    call = _Policed({f"note://v{i}" for i in range(0, 300, 2)})
    completion = _complete("note://{id}", [f"v{i}" for i in range(300)], call, hasMore=True)
    assert completion["values"] == [f"v{i}" for i in range(0, MAX_VALUES, 2)]
    assert completion["hasMore"] is True and "total" not in completion
    assert len(call.asked) == MAX_VALUES


def test_values_of_other_refs_are_left_as_the_completion_says() -> None:
    call = _Policed(set())
    for uri in ("pair://{a}/{b}", "note://unknown/{id}"):
        assert _complete(uri, ["x"], call) == {"values": ["x"], "total": 1}
    prompt = {"values": ["x"], "total": 1}
    assert shown_values(prompt, {"type": "ref/prompt", "name": "p"}, TEMPLATES, call) == prompt
    assert call.asked == []
