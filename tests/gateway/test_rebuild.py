"""The catalog rebuild in-process (SECURITY.md TC-3, UP-4): whatever one upstream's lists
hold, and whatever fails while they are screened or installed, the other upstreams' tools
stay offered, the rebuild never raises into the replica that asked, and clients never see
half a catalog."""

from __future__ import annotations

import logging
import re
import secrets
from typing import Any

import pytest

from bastion.config.model import Config, ServerConfig
from bastion.gateway import offer
from bastion.gateway.gateway import Gateway
from bastion.protocol.request_state import RequestStateSealer
from bastion.server.registry import TemplateEntry
from bastion.upstream.replica import LIST_KINDS, ReplicaState

pytestmark = pytest.mark.anyio


def listing(*tools: str, template: str = "file:///{path}") -> dict[str, list[Any]]:
    return {
        "tools": [{"name": name, "inputSchema": {"type": "object"}} for name in tools],
        "resources": [{"uri": "file:///readme", "name": "readme"}],
        "resourceTemplates": [{"uriTemplate": template, "name": "files"}],
        "prompts": [{"name": "hello"}],
    }


def gateway(**listings: dict[str, list[Any]]) -> Gateway:
    """A gateway whose upstreams (one per keyword) are ready with these listings."""
    config = Config(servers={name: ServerConfig(command="unused") for name in listings})
    gw = Gateway(config, {}, sealer=RequestStateSealer([secrets.token_bytes(32)]))
    for name, lists in listings.items():
        (replica,) = gw.replicas[name]
        replica.state = ReplicaState.READY
        replica._listings.current = lists
    return gw


def offered(gw: Gateway) -> dict[str, list[str]]:
    app = gw.app
    return {
        "tools": sorted(app.tools),
        "prompts": sorted(app.prompts),
        "resources": sorted(app.resources),
        "templates": sorted(entry.template.uriTemplate for entry in app.templates),
    }


GOOD = {
    "tools": ["good__a", "good__b"],
    "prompts": ["good__hello"],
    "resources": ["good+file:///readme"],
    "templates": ["good+file:///{path}"],
}


async def test_garbage_in_a_listing_costs_only_that_item_TC3() -> None:
    """Red team t2b: ``"resources": "abc"`` made every rebuild raise (AttributeError)."""
    evil: dict[str, Any] = {
        "tools": ["abc", 5, None, {"name": "fine", "inputSchema": {}}],
        "resources": "abc",
        "resourceTemplates": [{"uriTemplate": 7}, "x"],
        "prompts": [["p"]],
    }
    gw = gateway(good=listing("a", "b"), evil=evil)
    await gw.rebuild(LIST_KINDS)
    assert offered(gw) == {**GOOD, "tools": ["evil__fine", *GOOD["tools"]]}


async def test_a_server_the_screens_fail_on_is_left_out_alone_TC3(
    caplog: pytest.LogCaptureFixture,
) -> None:
    gw = gateway(good=listing("a", "b"), evil=listing("c"))

    async def screen(server: str, tools: list[Any], others: dict[str, list[str]]) -> list[Any]:
        if server == "evil":
            raise ValueError("a definition the pin store chokes on")
        return tools

    gw.tool_screen = screen
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            await gw.rebuild(LIST_KINDS)
    assert offered(gw) == GOOD
    problems = [r.getMessage() for r in caplog.records if "could not be screened" in r.message]
    assert problems == [
        "upstream evil: its lists could not be screened (ValueError: a definition the pin "
        "store chokes on); not offered"
    ]  # once while it lasts, not once a rebuild


async def test_a_template_that_cannot_be_compiled_costs_only_itself_TC3(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Red team t2: ``file:///{1}`` raised re.error out of the rebuild, after the tools,
    prompts and resources were already swapped in (half a catalog)."""
    build = TemplateEntry.build

    def fragile(template: Any, fn: Any) -> TemplateEntry:
        if "{1}" in template.uriTemplate:
            raise re.error("bad character in group name '1'")
        return build(template, fn)

    monkeypatch.setattr(TemplateEntry, "build", fragile)
    gw = gateway(good=listing("a", "b"), evil=listing("c", template="file:///{1}"))
    await gw.rebuild(LIST_KINDS)
    catalog = offered(gw)
    assert catalog["templates"] == GOOD["templates"]
    assert catalog["tools"] == ["evil__c", *GOOD["tools"]]
    assert "evil+file:///readme" in catalog["resources"]


async def test_a_failing_rebuild_keeps_the_catalog_clients_have_UP4(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gw = gateway(good=listing("a", "b"))
    await gw.rebuild(LIST_KINDS)
    before = offered(gw)

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(offer, "tool_proxy", broken)
    gw.replicas["good"][0]._listings.current = listing("x")
    await gw.rebuild(LIST_KINDS)  # does not raise into the replica that asked
    assert offered(gw) == before  # all of it: no tools cleared and half replaced
