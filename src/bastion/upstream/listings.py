"""What one upstream replica lists, kept current while its session lives.

``Listings.current`` holds the upstream's tools, resources, templates and prompts, listed at
start and again when it announces a change. A 2026-07-28 upstream announces changes (and
resource updates) only on a ``subscriptions/listen`` stream, reopened whenever the set of
followed resources changes; its acknowledgement triggers a resync, which re-lists once and
reports only what really changed while nobody listened (TC-2). A 2025-11-25 upstream is
followed with ``resources/subscribe``. What is kept is bounded by the server's
``ListingLimits`` (only well-formed items, at most ``max_items`` of each kind and
``max_bytes`` in all, UP-4, DS-4); ``problem`` says what the last listing left out, and a
storm of announced changes is re-listed at most once per ``relist_interval``.
"""

from __future__ import annotations

import logging
import time
from typing import Final

import anyio

from bastion._log_counts import LogCounter
from bastion._types import Clock, JSONObject
from bastion.client.listing import DEFAULT_LIMITS, ListingBudget, ListingLimits
from bastion.client.session import ClientSession
from bastion.errors import BastionError
from bastion.protocol.versions import Era

__all__ = ["LISTEN_RETRY", "LIST_KINDS", "Listings"]

logger = logging.getLogger(__name__)

LISTEN_RETRY: Final = 5.0  # seconds before reopening a dropped subscriptions/listen stream
LOG_EVERY: Final = 60.0  # seconds between two log lines about one upstream's bad listings
LIST_KINDS: Final = ("tools", "resources", "prompts")  # the lists that can change
_LISTEN_ALL: Final = {
    "toolsListChanged": True,
    "promptsListChanged": True,
    "resourcesListChanged": True,
}


class Listings:
    def __init__(
        self,
        label: str,
        limits: ListingLimits = DEFAULT_LIMITS,
        *,
        relist_timeout: float = 60.0,
        clock: Clock = time.monotonic,
    ) -> None:
        self._label = label
        self._limits = limits
        self._relist_timeout = relist_timeout  # seconds one re-listing may take in all
        self._clock = clock
        self._listed_at = float("-inf")  # when the last listing began
        self._malformed_log = LogCounter(LOG_EVERY, clock)
        self._cut_log = LogCounter(LOG_EVERY, clock)
        self.problem: str | None = None  # what the last listing left out, for /readyz
        self.current: dict[str, list[JSONObject]] = {}
        self.resources: set[str] = set()  # upstream URIs some client is subscribed to
        self._changed = anyio.Event()
        self._changed_kinds: set[str] = set()
        self._resync = False  # re-list and announce only differences (see resync)
        self._relisten = anyio.Event()

    def changed(self, kind: str) -> None:
        """The upstream announced that its ``kind`` list changed."""
        self._changed_kinds.add(kind)
        self._changed.set()

    def resync(self) -> None:
        # 2026-07-28: a change announced before the listen stream was open (between the
        # listing and now, e.g. a rug pull right after the first tools/list) was sent to
        # nobody. Re-list once, so no change goes unnoticed (TC-2).
        self._resync = True
        self._changed.set()

    async def refresh(self, session: ClientSession) -> None:
        self._listed_at = self._clock()
        caps = session.server.capabilities if session.server else {}
        budget = ListingBudget(self._limits)
        listings: dict[str, list[JSONObject]] = {}
        if "tools" in caps:
            listings["tools"] = await session.list_tools(budget)
        if "resources" in caps:
            listings["resources"] = await session.list_all("resources/list", "resources", budget)
            listings["resourceTemplates"] = await session.list_all(
                "resources/templates/list", "resourceTemplates", budget
            )
        if "prompts" in caps:
            listings["prompts"] = await session.list_all("prompts/list", "prompts", budget)
        self.current = listings
        self._report(budget)

    def _report(self, budget: ListingBudget) -> None:
        """Log what ``budget`` left out (once a minute at most) and keep it for /readyz."""
        if budget.malformed and (times := self._malformed_log.count()) is not None:
            logger.warning(
                "upstream %s: %d malformed list items left out (%d listing(s) with some "
                "since the previous such line)",
                self._label,
                budget.malformed,
                times,
            )
        self.problem = None
        if budget.cut:
            self.problem = "listing cut: " + "; ".join(budget.cut)
            if (times := self._cut_log.count()) is not None:
                logger.warning(
                    "upstream %s: %s (%d listing(s) cut since the previous such line)",
                    self._label,
                    self.problem,
                    times,
                )

    async def next_changes(self, session: ClientSession) -> tuple[str, ...]:
        """Wait for announced changes, re-list, and return the kinds that changed (none
        when re-listing failed, or a resync found nothing new)."""
        await self._changed.wait()
        # DS-4: announcements coming faster than relist_interval are re-listed together.
        await anyio.sleep(max(0.0, self._listed_at + self._limits.relist_interval - self._clock()))
        self._changed = anyio.Event()
        kinds = set(self._changed_kinds)
        self._changed_kinds.clear()
        resync, self._resync = self._resync, False
        before = self.current
        try:
            with anyio.fail_after(self._relist_timeout):
                await self.refresh(session)
        except BastionError as exc:
            logger.warning("upstream %s: re-listing failed: %s", self._label, exc.detail)
            return ()
        except TimeoutError:
            logger.warning(
                "upstream %s: re-listing took over %.0fs; left as it was",
                self._label,
                self._relist_timeout,
            )
            return ()
        if resync:  # announce only what really changed while nobody listened
            kinds |= {
                kind for kind in LIST_KINDS if _lists(before, kind) != _lists(self.current, kind)
            }
        return tuple(sorted(kinds))

    async def listen(self, session: ClientSession) -> None:
        """2026-07-28 upstreams announce list changes and resource updates only on a
        subscriptions/listen stream; it is reopened whenever the set of resources changes."""
        while True:
            relisten = self._relisten = anyio.Event()
            wanted: JSONObject = {**_LISTEN_ALL, "resourceSubscriptions": sorted(self.resources)}
            async with anyio.create_task_group() as tg:
                tg.start_soon(_cancel_on, relisten, tg.cancel_scope)
                try:
                    await session.request(
                        "subscriptions/listen", {"notifications": wanted}, timeout=0
                    )
                except BastionError as exc:
                    logger.info(
                        "upstream %s: listen stream ended (%s)",
                        self._label,
                        exc.detail or exc.wire_message,
                    )
                    with anyio.move_on_after(LISTEN_RETRY):
                        await relisten.wait()
                tg.cancel_scope.cancel()

    async def subscribe(self, session: ClientSession | None, uri: str, on: bool) -> None:
        """Follow (or stop following) updates of the upstream resource ``uri``."""
        if on:
            self.resources.add(uri)
        else:
            self.resources.discard(uri)
        if session is None or session.server is None:
            return  # applied when the session (re)starts
        if session.server.era is Era.MODERN:
            self._relisten.set()
            return
        method = "resources/subscribe" if on else "resources/unsubscribe"
        try:
            await session.request(method, {"uri": uri})
        except BastionError as exc:
            logger.info("upstream %s refused %s of %s: %s", self._label, method, uri, exc.detail)


def _lists(listings: dict[str, list[JSONObject]], kind: str) -> list[list[JSONObject] | None]:
    """The listings behind one announced kind (resources include their templates)."""
    keys = ("resources", "resourceTemplates") if kind == "resources" else (kind,)
    return [listings.get(key) for key in keys]


async def _cancel_on(event: anyio.Event, scope: anyio.CancelScope) -> None:
    await event.wait()
    scope.cancel()
