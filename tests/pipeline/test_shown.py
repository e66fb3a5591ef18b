"""Lists and completions behind the authorize stage, over the in-memory transport (AZ-2,
IN-1): pages are filtered per caller before they are cut, cursors are sealed and bound to
the caller and the list, completion values naming a resource the caller may not read are
dropped, and params of the wrong JSON type are invalid params, in both protocol eras."""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from bastion._types import JSONObject
from bastion.auth.principal import Principal
from bastion.pipeline import AuthorizeStage
from bastion.protocol.request_state import RequestStateSealer
from tests.pipeline.many import COMPLETIONS, TEMPLATE, build_app, note_uris
from tests.pipeline.support import policy, principal, raw_guarded
from tests.server.raw import INITIALIZE, RawClient

pytestmark = pytest.mark.anyio

ERAS = ["legacy", "modern"]
INVALID_PARAMS = -32602
POLICY = policy(
    """
version: 1
roles:
  dev: {}
  ops: {}
  admin: {}
rules:
  - id: handshake
    effect: allow
    roles: [dev, ops, admin]
    methods: [initialize, ping, "notifications/*", resources/list, resources/templates/list]
  - id: dev-notes
    effect: allow
    roles: [dev]
    resources: ["note://**"]
  - id: no-secrets
    effect: deny
    roles: [dev]
    resources: ["note://secret-*"]
  - id: ops-notes
    effect: allow
    roles: [ops]
    resources: ["note://secret-1*"]
  - id: admin-all
    effect: allow
    roles: [admin]
    methods: ["**"]
"""
)
# The 111 notes ops may see (secret-1, secret-10..19, secret-100..199), spread over the list.
OPS_NOTES = [uri for uri in note_uris() if uri.startswith("note://secret-1")]


@asynccontextmanager
async def client(
    who: Principal, era: str, sealer: RequestStateSealer, asked: list[JSONObject] | None = None
) -> AsyncIterator[Any]:
    """``ask(method, params)``: one request as ``who`` in ``era``; the JSON-RPC answer."""
    stages = [AuthorizeStage(lambda: POLICY)]
    async with raw_guarded(build_app(asked), stages, who, sealer) as raw:
        if era == "legacy":
            await raw.call("initialize", INITIALIZE, 0)
            await raw.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        yield _Asker(raw, era)


class _Asker:
    def __init__(self, raw: RawClient, era: str) -> None:
        self.raw, self.era, self.ids = raw, era, 0

    async def __call__(self, method: str, params: dict[str, Any] | None = None) -> Any:
        self.ids += 1
        if self.era == "modern":
            return await self.raw.modern(method, params, self.ids)
        return await self.raw.call(method, params or {}, self.ids)

    async def every_page(self, method: str = "resources/list") -> list[list[str]]:
        """The URIs of each page, following ``nextCursor`` (at most 10 pages)."""
        pages: list[list[str]] = []
        params: dict[str, Any] = {}
        for _ in range(10):
            result = (await self(method, params))["result"]
            pages.append([item["uri"] for item in result["resources"]])
            if "nextCursor" not in result:
                return pages
            params = {"cursor": result["nextCursor"]}
        raise AssertionError("more than 10 pages")


def _sealer() -> RequestStateSealer:
    return RequestStateSealer([secrets.token_bytes(32)])


def _old_style(offset: int) -> str:
    """A cursor as the gateway used to issue them: base64 of ``o:<offset>``."""
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode().rstrip("=")


def _altered(cursor: str, offset: int) -> str:
    """``cursor`` with the offset in its (readable) payload changed, its MAC kept."""
    body, _, mac = cursor.partition(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    payload["d"] = offset
    changed = base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")
    return f"{changed}.{mac}"


@pytest.mark.parametrize("era", ERAS)
async def test_az2_a_caller_gets_every_item_it_may_see_on_full_pages_AZ2(era: str) -> None:
    """AZ-2: the list is filtered for the caller before it is cut into pages. Two notes
    allowed among 250 come on one page with no cursor (they came one on the first page,
    then an empty page with a nextCursor, which told how the denied notes lay); 111 spread
    over the list come as 100 and 11; the admin pages through all 250, each once."""
    sealer = _sealer()
    async with client(principal("alice", "dev"), era, sealer) as ask:
        assert await ask.every_page() == [["note://public-a", "note://public-b"]]
    async with client(principal("olga", "ops"), era, sealer) as ask:
        pages = await ask.every_page()
    assert [len(page) for page in pages] == [100, 11]
    assert [uri for page in pages for uri in page] == OPS_NOTES
    async with client(principal("root", "admin"), era, sealer) as ask:
        pages = await ask.every_page()
    assert [len(page) for page in pages] == [100, 100, 50]
    assert [uri for page in pages for uri in page] == note_uris()


@pytest.mark.parametrize("era", ERAS)
async def test_az2_a_cursor_not_issued_to_this_caller_for_this_list_is_invalid_params_AZ2(
    era: str,
) -> None:
    """AZ-2: a cursor is sealed and bound to its list and its caller. One forged (the old
    ``o:<offset>`` form, which let a caller count the denied items and find where the
    allowed ones lay), altered, another principal's or credential's, or one of another
    list is -32602 Invalid cursor; the caller's own goes on."""
    sealer = _sealer()
    async with client(principal("root", "admin"), era, sealer) as ask:
        issued = (await ask("resources/list"))["result"]["nextCursor"]
        assert len((await ask("resources/list", {"cursor": issued}))["result"]["resources"]) == 100
        refused = [
            await ask("resources/list", {"cursor": _old_style(100)}),
            await ask("resources/list", {"cursor": _old_style(7)}),
            await ask("resources/list", {"cursor": _altered(issued, 7)}),
            await ask("resources/templates/list", {"cursor": issued}),
        ]
    other_key = Principal(id="root", credential_id="key:other", method="api-key", roles=("admin",))
    for who in (principal("rita", "admin"), other_key):
        async with client(who, era, sealer) as ask:
            refused.append(await ask("resources/list", {"cursor": issued}))
    for answer in refused:
        assert answer["error"]["code"] == INVALID_PARAMS, answer
        assert answer["error"]["message"] == "Invalid cursor"


@pytest.mark.parametrize("era", ERAS)
async def test_az2_completion_values_naming_what_the_caller_may_not_read_are_dropped_AZ2(
    era: str,
) -> None:
    """AZ-2: a value completing the one variable of a resource template names a resource;
    the caller is offered only those it may read (secret-3 and secret-9 were offered to a
    caller denied them), and the total counts only those."""
    ref = {"type": "ref/resource", "uri": TEMPLATE}
    params = {"ref": ref, "argument": {"name": "id", "value": ""}}
    sealer = _sealer()
    async with client(principal("alice", "dev"), era, sealer) as ask:
        completion = (await ask("completion/complete", params))["result"]["completion"]
    assert completion["values"] == ["public-a", "public-b"]
    assert completion["total"] == 2
    async with client(principal("root", "admin"), era, sealer) as ask:
        completion = (await ask("completion/complete", params))["result"]["completion"]
    assert completion["values"] == COMPLETIONS


@pytest.mark.parametrize("era", ERAS)
async def test_in1_params_of_the_wrong_json_type_are_invalid_params_IN1(era: str) -> None:
    """IN-1: a uri or name that is not a string is -32602 (it was -32003 Denied by policy,
    as if the request were well formed), and a completion argument or context of the wrong
    shape is -32602 without reaching the server's completion (it was relayed upstream)."""
    asked: list[JSONObject] = []
    ref = {"type": "ref/resource", "uri": TEMPLATE}
    async with client(principal("root", "admin"), era, _sealer(), asked) as ask:
        answers = [
            await ask("resources/read", {"uri": 5}),
            await ask("resources/read", {}),
            await ask("prompts/get", {"name": None}),
            await ask("tools/call", {"name": ["x"], "arguments": {}}),
            await ask("completion/complete", {"ref": ref, "argument": {"name": 1, "value": []}}),
            await ask("completion/complete", {"ref": ref, "argument": {"name": "id"}}),
            await ask(
                "completion/complete",
                {
                    "ref": ref,
                    "argument": {"name": "id", "value": ""},
                    "context": {"arguments": {"x": 1}},
                },
            ),
        ]
        well_formed = {"ref": ref, "argument": {"name": "id", "value": "p"}}
        assert "result" in await ask("completion/complete", well_formed)
    assert [answer["error"]["code"] for answer in answers] == [INVALID_PARAMS] * len(answers)
    assert asked == [{"ref": ref, "argument": {"name": "id", "value": "p"}}]
