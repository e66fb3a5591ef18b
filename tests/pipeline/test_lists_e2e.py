"""Lists, cursors and completions through a real ``bastion serve`` with API keys and a policy,
in front of an upstream with 250 notes of which a developer may read two
(``tests.pipeline.many``), in both protocol eras.

AZ-2: a list is filtered for its caller before it is paged, so the developer gets both notes
on one page and no cursor (before: one note, then an empty page with a nextCursor, and forged
``o:<offset>`` cursors counted the denied notes and found where the allowed ones lay); a
cursor is sealed and bound to its caller, so a forged one or another key's is -32602; a
completion offers only the notes the caller may read. IN-1: a uri that is not a string, or a
completion argument of the wrong shape, is -32602 rather than a policy refusal or a relay.
"""

from __future__ import annotations

import base64
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from tests.pipeline.live import POLICY_HEAD, Gateway, LegacySession, answer_of, serve
from tests.pipeline.many import COMPLETIONS, NOTES, TEMPLATE, note_uris
from tests.support import ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]

INVALID_PARAMS = -32602
KEYS = {"alice": ("dev",), "root": ("admin",)}
SERVERS = f"""\
  many:
    command: {sys.executable}
    args: [-m, tests.pipeline.many]
    cwd: {ROOT}
"""
POLICY = (
    POLICY_HEAD
    + """\
rules:
  - id: dev-handshake
    effect: allow
    roles: [dev]
    methods: [initialize, ping, "notifications/*", resources/list, resources/templates/list]
  - id: dev-notes
    effect: allow
    roles: [dev]
    resources: ["many+note://**"]
  - id: no-secrets
    effect: deny
    roles: [dev]
    resources: ["many+note://secret-*"]
  - id: admin-all
    effect: allow
    roles: [admin]
    methods: ["**"]
"""
)
PUBLIC = ["many+note://public-a", "many+note://public-b"]
REF = {"type": "ref/resource", "uri": "many+" + TEMPLATE}


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with serve(tmp_path_factory.mktemp("lists"), SERVERS, POLICY, KEYS) as gateway:
        yield gateway


class _Asker:
    """One caller in one era: ``(method, params)`` -> the JSON-RPC answer."""

    def __init__(self, gw: Gateway, who: str, era: str) -> None:
        self.gw, self.who = gw, who
        self.session: LegacySession | None = gw.session(who) if era == "legacy" else None

    def __call__(self, method: str, params: dict[str, Any] | None = None) -> Any:
        if self.session is not None:
            return answer_of(self.session.request(method, params))
        return answer_of(self.gw.modern(self.who, method, params))

    def pages(self) -> list[list[str]]:
        pages: list[list[str]] = []
        params: dict[str, Any] = {}
        for _ in range(10):
            result = self("resources/list", params)["result"]
            pages.append([item["uri"] for item in result["resources"]])
            if "nextCursor" not in result:
                return pages
            params = {"cursor": result["nextCursor"]}
        raise AssertionError("more than 10 pages")


def _old_style(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode().rstrip("=")


@pytest.mark.parametrize("era", ["legacy", "modern"])
def test_az2_lists_are_filtered_before_paging_and_cursors_are_bound_to_the_caller_AZ2(
    gw: Gateway, era: str
) -> None:
    alice, root = _Asker(gw, "alice", era), _Asker(gw, "root", era)
    assert alice.pages() == [PUBLIC]
    pages = root.pages()
    assert [len(page) for page in pages] == [100, 100, NOTES - 200]
    assert [uri for page in pages for uri in page] == ["many+" + u for u in note_uris()]
    issued = root("resources/list")["result"]["nextCursor"]
    for cursor in (_old_style(7), _old_style(8), _old_style(100), issued):
        error = alice("resources/list", {"cursor": cursor})["error"]
        assert (error["code"], error["message"]) == (INVALID_PARAMS, "Invalid cursor")


@pytest.mark.parametrize("era", ["legacy", "modern"])
def test_az2_a_completion_offers_only_what_the_caller_may_read_AZ2(gw: Gateway, era: str) -> None:
    params = {"ref": REF, "argument": {"name": "id", "value": ""}}
    alice = _Asker(gw, "alice", era)("completion/complete", params)["result"]["completion"]
    assert alice["values"] == ["public-a", "public-b"] and alice["total"] == 2
    root = _Asker(gw, "root", era)("completion/complete", params)["result"]["completion"]
    assert root["values"] == COMPLETIONS


@pytest.mark.parametrize("era", ["legacy", "modern"])
def test_in1_params_of_the_wrong_json_type_are_invalid_params_IN1(gw: Gateway, era: str) -> None:
    root = _Asker(gw, "root", era)
    bad_argument = {"ref": REF, "argument": {"name": 1, "value": []}}
    assert root("completion/complete", bad_argument)["error"]["code"] == INVALID_PARAMS
    if era == "legacy":  # a 2026-07-28 request without a string uri has no Mcp-Name to match
        assert root("resources/read", {"uri": 5})["error"]["code"] == INVALID_PARAMS
        assert root("prompts/get", {"name": None})["error"]["code"] == INVALID_PARAMS
