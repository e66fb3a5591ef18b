"""One upstream's lists as a replica keeps them (SECURITY.md UP-4, DS-4): the server's
``listing`` limits apply to each refresh, what they cut is said (for /readyz) and logged
at most once a minute, a storm of list_changed is re-listed once per ``relist_interval``,
and a re-listing that takes too long leaves the last listing in place."""

from __future__ import annotations

import logging
import time
from typing import Any

import anyio
import pytest

from bastion.client.listing import ListingLimits
from bastion.client.session import ClientSession, ServerInfo
from bastion.config.load import parse_config
from bastion.protocol.versions import Era
from bastion.upstream.listings import Listings

pytestmark = pytest.mark.anyio


class ToolsServer(ClientSession):
    """A session whose server lists ``count`` tools (plus ``extra`` raw items) on one
    page, after ``delay`` seconds; it counts the listings."""

    def __init__(self, count: int, extra: tuple[Any, ...] = (), delay: float = 0.0) -> None:
        self.server = ServerInfo(Era.LEGACY, "2025-11-25", capabilities={"tools": {}})
        self._stream = None
        self.count, self.extra, self.delay = count, extra, delay
        self.started: list[float] = []

    async def request(self, method: str, params: Any = None, **_: Any) -> dict[str, Any]:
        self.started.append(time.monotonic())
        await anyio.sleep(self.delay)
        tools = [{"name": f"t{i}", "inputSchema": {"type": "object"}} for i in range(self.count)]
        return {"tools": [*tools, *self.extra]}


def test_a_servers_listing_limits_come_from_its_configuration_UP4() -> None:
    config = parse_config(
        "servers:\n  big:\n    command: x\n"
        "    listing: {max_items: 50, max_bytes: 65536, relist_interval: 2}\n"
        "  plain:\n    command: y\n",
        {},
    )
    assert config.servers["big"].listing == ListingLimits(
        max_items=50, max_bytes=65536, relist_interval=2.0
    )
    assert config.servers["plain"].listing == ListingLimits(
        max_items=10_000, max_bytes=16 * 1024 * 1024, relist_interval=0.5
    )


async def test_what_the_limits_cut_is_said_and_logged_once_a_minute_UP4_DS4(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [1000.0]
    listings = Listings("big", ListingLimits(max_items=3), clock=lambda: now[0])
    server = ToolsServer(5, extra=("junk", {"name": 1}))
    with caplog.at_level(logging.WARNING, logger="bastion.upstream.listings"):
        for _ in range(3):
            await listings.refresh(server)
            now[0] += 10
        assert [tool["name"] for tool in listings.current["tools"]] == ["t0", "t1", "t2"]
        assert listings.problem == "listing cut: tools past 3 items (max_items)"
        lines = [r.getMessage() for r in caplog.records]
        assert lines == ["upstream big: listing cut: tools past 3 items (max_items) (1 listing(s) "
                         "cut since the previous such line)"]  # fmt: skip
        now[0] += 60
        await listings.refresh(server)  # the fourth: a line again, counting the three since
        assert "(3 listing(s) cut since" in caplog.records[-1].getMessage()
    server.count, server.extra = 2, ("junk",)
    with caplog.at_level(logging.WARNING, logger="bastion.upstream.listings"):
        await listings.refresh(server)
    assert listings.problem is None  # it fits again
    assert "upstream big: 1 malformed list items left out" in caplog.records[-1].getMessage()


async def test_a_storm_of_list_changed_is_relisted_once_per_interval_DS4() -> None:
    """Red team v/t5: each list_changed re-listed everything, back to back."""
    listings = Listings("storm", ListingLimits(relist_interval=0.2))
    server = ToolsServer(3)
    await listings.refresh(server)
    announced: list[tuple[str, ...]] = []

    async def follow() -> None:
        while True:
            announced.append(await listings.next_changes(server))

    start = time.monotonic()
    async with anyio.create_task_group() as tg:
        tg.start_soon(follow)
        while time.monotonic() - start < 1.0:
            listings.changed("tools")
            await anyio.sleep(0.002)
        await anyio.sleep(0.3)
        tg.cancel_scope.cancel()
    elapsed = time.monotonic() - start
    gaps = [b - a for a, b in zip(server.started, server.started[1:], strict=False)]
    assert min(gaps) >= 0.19, gaps
    assert 3 <= len(announced) <= elapsed / 0.2 + 1, (announced, elapsed)
    assert set(announced) == {("tools",)}


async def test_a_relisting_that_takes_too_long_keeps_the_last_listing_UP4() -> None:
    listings = Listings("slow", relist_timeout=0.2)
    server = ToolsServer(2)
    await listings.refresh(server)
    before = listings.current
    server.count, server.delay = 5, 5.0
    listings.changed("tools")
    start = time.monotonic()
    with anyio.fail_after(2):
        assert await listings.next_changes(server) == ()
    assert time.monotonic() - start < 1.0
    assert listings.current is before
