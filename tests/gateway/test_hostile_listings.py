"""An upstream's hostile lists through a real ``bastion serve`` (SECURITY.md TC-3, UP-4,
DS-4): malformed items cost only themselves, never another upstream's tools or life; a
listing far past the limits is cut at them (what is kept, how long it takes, how much
memory), and a storm of list_changed announcements is re-listed once per interval."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio
import httpx
import pytest

from bastion.client import ClientSession
from bastion.protocol.versions import Era
from tests.gateway.test_faults import (
    GOOD,
    connected,
    echo,
    run_gateway,
    script,
    upstreams,
    wait_until,
)

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

MiB = 1024 * 1024


async def listed(session: ClientSession, method: str, key: str) -> list[str]:
    """The names (URIs) of everything the gateway lists, every page followed (at 40 pages
    a second: the default rate limit is 50 requests a second)."""
    field = {"tools": "name", "prompts": "name", "resources": "uri"}.get(key, "uriTemplate")
    names: list[str] = []
    cursor = None
    for _ in range(1000):
        await anyio.sleep(1 / 40)
        page = await session.request(method, {"cursor": cursor} if cursor else {})
        names += [item[field] for item in page[key]]
        if not (cursor := page.get("nextCursor")):
            return names
    raise AssertionError(f"{method}: more than 1000 pages")


async def list_requests(session: ClientSession, server: str) -> int:
    """How many list requests the hostile upstream ``server`` has answered so far."""
    out = await session.call_tool(f"{server}__lists")
    return int(out["content"][0]["text"])


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


@contextmanager
def watched(base: str, pid: int) -> Iterator[dict[str, float]]:
    """Polls ``/healthz`` and the gateway's RSS meanwhile: the slowest answer and the peak."""
    seen = {"healthz": 0.0, "rss": float(_rss(pid))}
    stop = threading.Event()

    def poll() -> None:
        with httpx.Client(timeout=60) as http:
            while not stop.is_set():
                start = time.monotonic()
                assert http.get(f"{base}/healthz").status_code == 200
                seen["healthz"] = max(seen["healthz"], time.monotonic() - start)
                seen["rss"] = max(seen["rss"], _rss(pid))
                stop.wait(0.05)

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        stop.set()
        thread.join(60)


@pytest.mark.parametrize("era", [Era.LEGACY, Era.MODERN], ids=["legacy", "modern"])
async def test_malformed_listings_cost_only_their_own_items_TC3_UP4(
    tmp_path: Path, era: Era
) -> None:
    """Red team t2/t2b: one upstream listed strings, numbers and nameless items; every
    catalog rebuild raised, so the healthy upstream that announced changes was restarted
    until its circuit opened, and clients lost its tools (-32602 Unknown tool)."""
    servers = {"good": GOOD, "evil": script("hostile_listing.py", "garbage")}
    with run_gateway(tmp_path, servers) as gw:
        async with httpx.AsyncClient(timeout=5) as http, connected(gw.url, era=era) as s:
            for i in range(6):  # each announces a change: the gateway re-lists and rebuilds
                await s.call_tool("good__test_trigger_tool_change")
                await echo(s, "good__echo", f"good {i}", within=2)
                await anyio.sleep(0.3)
            tools = await listed(s, "tools/list", "tools")
            resources = await listed(s, "resources/list", "resources")
            prompts = await listed(s, "prompts/list", "prompts")
            await echo(s, "evil__echo", "the well-formed one", within=2)
            code, entries = await upstreams(http, gw)
    assert {"good__echo", "good__test_trigger_tool_change", "evil__echo"} <= set(tools)
    assert [t for t in tools if t.startswith("evil__")] == ["evil__echo"]
    assert not [uri for uri in resources if uri.startswith("evil+")]
    assert not [p for p in prompts if p.startswith("evil__")]
    assert code == 200
    assert (entries["good"]["restarts"], entries["evil"]["restarts"]) == (0, 0), entries
    log = gw.stderr()
    assert "upstream evil: 8 malformed list items left out" in log, log
    assert log.count("malformed list items left out") == 1, log  # once a minute at most
    assert "Traceback" not in log, log


async def test_a_listing_far_past_the_limits_is_cut_at_them_UP4_DS4(tmp_path: Path) -> None:
    """Red team t4/t4c and v/t4: 25 pages of 60,000 tools took the gateway from 179 to
    1,020 MiB and climbing, 100,000 tools made the first tools/list wait 35 s, 500,000
    resources 19 s. Now an upstream offering 200,000 tools and as many resources (100
    pages of each) has the default 10,000 of each kept, and the rest is never asked for."""
    servers = {"good": GOOD, "big": script("hostile_listing.py", "huge", "2000", "100")}
    with run_gateway(tmp_path, servers, ready=False) as gw, watched(gw.base, gw.proc.pid) as seen:
        async with httpx.AsyncClient(timeout=60) as http:
            entries = await wait_until(
                http, gw, lambda u: u["big"]["state"] == "ready", "big is ready", timeout=60
            )
            async with connected(gw.url, era=Era.MODERN) as s:
                # The first request waits for the catalog: the screens see 20,000 items.
                await echo(s, "big__echo", "beside a huge listing", within=60)
                await echo(s, "good__echo", "and the others", within=2)
                lists = await list_requests(s, "big")
                tools = await listed(s, "tools/list", "tools")
                resources = await listed(s, "resources/list", "resources")
            code = (await http.get(f"{gw.base}/readyz")).status_code
    # 10,000 items of a kind are 5 pages; the 6th shows there are more, and is the last.
    assert lists == 6 + 6 + 1 + 1, lists  # tools, resources, templates, prompts
    assert len([name for name in tools if name.startswith("big__")]) == 10_000
    assert len([uri for uri in resources if uri.startswith("big+")]) == 10_000
    assert "good__echo" in tools
    assert code == 200
    assert entries["big"]["lastError"] == (
        "listing cut: tools past 10000 items (max_items); resources past 10000 items (max_items)"
    )
    assert gw.stderr().count("listing cut:") == 1
    assert seen["rss"] < 400 * MiB, seen
    assert seen["healthz"] < 5.0, seen  # generous (a shared machine); was tens of seconds


async def test_a_list_changed_storm_is_relisted_once_per_interval_DS4(tmp_path: Path) -> None:
    """Red team v/t5: every list_changed re-listed everything and rebuilt the catalog, back
    to back. An upstream announcing a change every 10 ms is re-listed at most once per
    ``relist_interval`` (0.5 s by default), and the other upstream is served meanwhile."""
    servers = {
        "good": GOOD,
        "storm": script("hostile_listing.py", "huge", "50", "1", "--storm"),
    }
    with run_gateway(tmp_path, servers) as gw:
        async with httpx.AsyncClient(timeout=5) as http, connected(gw.url, era=Era.MODERN) as s:
            first = await list_requests(s, "storm")
            start = time.monotonic()
            worst = 0.0
            while time.monotonic() - start < 3.0:
                worst = max(worst, await echo(s, "good__echo", "meanwhile", within=2))
                await anyio.sleep(0.05)
            last = await list_requests(s, "storm")
            elapsed = time.monotonic() - start
            _, entries = await upstreams(http, gw)
    rounds = (last - first) / 4  # four lists a round, one page each
    assert rounds <= elapsed / 0.5 + 2, (rounds, elapsed)
    assert rounds >= 2, rounds  # it is still followed
    assert worst < 1.0, worst
    assert (entries["good"]["restarts"], entries["storm"]["restarts"]) == (0, 0)
