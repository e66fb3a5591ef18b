"""What the client keeps of a server's lists (SECURITY.md UP-4, DS-4, TC-3): well-formed
items only, at most ``max_items`` of a kind and ``max_bytes`` in all, from at most 100
pages; past a limit no further page is asked for, and the budget says what was cut."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
import pytest

from bastion.client.listing import ListingBudget, ListingLimits
from bastion.client.session import ClientSession

pytestmark = pytest.mark.anyio

Pages = Callable[[str, str | None], dict[str, Any]]  # (method, cursor) -> result


class CannedServer(ClientSession):
    """A session whose server answers list requests from ``pages``; it counts them."""

    def __init__(self, pages: Pages) -> None:
        self._pages = pages
        self.asked: list[tuple[str, str | None]] = []

    async def request(self, method: str, params: Any = None, **_: Any) -> dict[str, Any]:
        cursor = (params or {}).get("cursor")
        self.asked.append((method, cursor))
        return self._pages(method, cursor)


def endless(key: str, per_page: int) -> Pages:
    """A list with no end: ``per_page`` well-formed items a page, a next cursor always."""

    def page(method: str, cursor: str | None) -> dict[str, Any]:
        start = int(cursor or 0)
        ids = range(start, start + per_page)
        if key == "resources":
            items = [{"uri": f"file:///{i}", "name": f"r{i}"} for i in ids]
        else:
            items = [{"name": f"t{i}", "inputSchema": {"type": "object"}} for i in ids]
        return {key: items, "nextCursor": str(start + per_page)}

    return page


GOOD_TOOL = {"name": "fine", "inputSchema": {"type": "object"}}


@pytest.mark.parametrize(
    ("key", "page", "kept"),
    [
        ("tools", "abc", []),
        ("tools", {"name": "x"}, []),
        (
            "tools",
            ["abc", 5, None, [GOOD_TOOL], {"name": 5, "inputSchema": {}}, GOOD_TOOL],
            ["fine"],
        ),
        ("tools", [{"name": "no schema"}, {"inputSchema": {}}, GOOD_TOOL], ["fine"]),
        ("resources", [{"uri": 5, "name": "r"}, {"name": "no uri"}, {"uri": "a:b"}], []),
        ("resourceTemplates", [{"uriTemplate": ["x"], "name": "t"}, "t"], []),
        ("prompts", [{"name": ["p"]}, {"name": "p", "arguments": "a"}, {"name": "ok"}], ["ok"]),
    ],
)
async def test_malformed_items_never_leave_the_client_TC3_UP4(
    key: str, page: Any, kept: list[str]
) -> None:
    """Red team t2b: ``"resources": "abc"`` reached the catalog, whose every rebuild then
    raised. Strings, numbers, nameless or mistyped items are dropped and counted."""
    server = CannedServer(lambda method, cursor: {key: page})
    budget = ListingBudget()
    items = await server.list_all(f"{key}/list", key, budget)
    assert [item["name"] for item in items] == kept
    offered = len(page) if isinstance(page, list) else 1
    assert budget.malformed == offered - len(kept)
    assert budget.cut == []


async def test_a_list_stops_at_max_items_and_asks_for_no_further_page_UP4_DS4() -> None:
    """Red team t4c: every page of an endless list was read (100 pages of 60,000 tools:
    the gateway's memory climbed past 1 GiB). Now the limit ends the listing."""
    server = CannedServer(endless("tools", 100))
    budget = ListingBudget(ListingLimits(max_items=250))
    tools = await server.list_all("tools/list", "tools", budget)
    assert [tool["name"] for tool in tools] == [f"t{i}" for i in range(250)]
    assert len(server.asked) == 3  # the third page shows there is more, and is the last
    assert budget.cut == ["tools past 250 items (max_items)"]


async def test_max_bytes_bounds_all_kinds_of_one_listing_together_DS4() -> None:
    budget = ListingBudget(ListingLimits(max_bytes=1024))
    tools = await CannedServer(endless("tools", 10)).list_all("tools/list", "tools", budget)
    size = sum(len(msgspec.json.encode(tool)) for tool in tools)
    assert 1024 - 2 * 50 < size <= 1024, size  # about as many as fit (each is ~46 bytes)
    assert budget.cut == ["tools past 1024 bytes (max_bytes)"]
    # What is left for the other kinds of the same listing is what the tools did not use.
    server = CannedServer(endless("resources", 10))
    resources = await server.list_all("resources/list", "resources", budget)
    assert resources == []
    assert len(server.asked) == 1
    assert budget.cut[-1] == "resources past 1024 bytes (max_bytes)"


async def test_a_list_is_read_from_at_most_100_pages_UP4() -> None:
    server = CannedServer(endless("tools", 1))
    budget = ListingBudget()
    tools = await server.list_all("tools/list", "tools", budget)
    assert len(tools) == len(server.asked) == 100
    assert budget.cut == ["tools past 100 pages"]


@pytest.mark.parametrize("cursor", [5, [], {"a": 1}, ""])
async def test_a_cursor_that_is_not_a_string_ends_the_list(cursor: object) -> None:
    server = CannedServer(lambda method, _: {"tools": [GOOD_TOOL], "nextCursor": cursor})
    assert await server.list_all("tools/list", "tools") == [GOOD_TOOL]
    assert len(server.asked) == 1
