"""The gateway: many upstream MCP servers behind one MCP server face.

``Gateway`` runs a ``Replica`` supervisor per configured upstream instance and keeps a
``ServerApp`` whose tools, resources and prompts are proxies into the merged catalog; the
same ``ServerConnection`` that serves the fixture serves gateway clients, so both protocol
eras, sessions, pagination and input rounds behave identically. The catalog is rebuilt
whenever an upstream becomes ready or says a list changed, and clients are told; what goes
into it passes the tool and definition screens first, and ``offer`` installs it in the app.
A resource the definition screen holds back (TC-1) is withheld from the app, so it is
neither read through a template that matches its URI nor subscribed to until an admin
approves it. Reads, subscriptions and update notifications stay within the namespace of the
upstream a URI belongs to (``namespaces``, TC-3).
"""

from __future__ import annotations

import itertools
import logging
from collections import Counter
from collections.abc import Callable, Mapping

import anyio
import anyio.abc

from bastion import __version__
from bastion._types import NO_CHECKS, ConnectChecks, JSONObject
from bastion.catalog import Catalog
from bastion.config.model import Config, ServerConfig
from bastion.errors import UpstreamUnavailable
from bastion.gateway.declared import GATEWAY_CAPABILITIES, GATEWAY_NAME
from bastion.gateway.namespaces import UpstreamNamespaces
from bastion.gateway.offer import (
    Complaints,
    DefinitionScreen,
    ToolScreen,
    build_offer,
    screen_listings,
)
from bastion.protocol import types as t
from bastion.protocol.jsonrpc import Notification
from bastion.protocol.refs import completion_ref
from bastion.protocol.request_state import RequestStateSealer
from bastion.server.connection import ServerConnection
from bastion.server.context import ToolContext
from bastion.server.registry import (
    ResourceEntry,
    ServerApp,
    ToolEntry,
    ToolFn,
)
from bastion.upstream.parking import PENDING_KEY, Owner
from bastion.upstream.replica import LIST_KINDS, Replica, ReplicaState

__all__ = ["DefinitionScreen", "Gateway", "ToolScreen"]

READY_POLL = 0.02  # seconds between readiness checks in ``wait_ready``

logger = logging.getLogger(__name__)


class Gateway:
    def __init__(
        self, config: Config, environ: Mapping[str, str], *, sealer: RequestStateSealer
    ) -> None:
        self.config = config
        self.sealer = sealer
        self.app = ServerApp(
            name=GATEWAY_NAME,
            version=__version__,
            declared_capabilities=dict(GATEWAY_CAPABILITIES),
        )
        self.app.completion = self._complete
        self.app.subscription_hook = self._subscription
        self.app.settle_hook = self.settle
        self._subscribers: Counter[str] = Counter()  # exposed URI -> subscribed connections
        self.catalog = Catalog()
        self._environ = environ
        self._servers = {name: s for name, s in config.servers.items() if s.enabled}
        self.namespaces = UpstreamNamespaces(self._servers, lambda: self.catalog)
        self.app.namespaces = self.namespaces
        self.replicas: dict[str, list[Replica]] = {
            name: self._replicas(name, server) for name, server in self._servers.items()
        }
        self._turns: dict[str, itertools.count[int]] = {n: itertools.count() for n in self.replicas}
        self._rebuild_lock = anyio.Lock()
        self._rebuilds_asked = self._rebuilds_done = 0  # rebuilds queued up share one
        self._complaints = Complaints()  # the upstreams' definitions left out, logged once
        # Which of a server's tools may be offered (tool pinning, TC-2/TC-3); None: all.
        self.tool_screen: ToolScreen | None = None
        # Which prompts, resources and templates may be offered (poison screen, TC-1).
        self.definition_screen: DefinitionScreen | None = None
        # What the gateway offers itself (the hub's), beside the upstreams' proxies.
        self._own_tools: dict[str, ToolEntry] = {}
        self._own_resources: dict[str, ResourceEntry] = {}
        self._tg: anyio.abc.TaskGroup | None = None
        self._running: dict[str, tuple[anyio.CancelScope, anyio.Event]] = {}

    def _replicas(
        self,
        name: str,
        server: ServerConfig,
        checks: ConnectChecks = NO_CHECKS,
    ) -> list[Replica]:
        return [
            Replica(
                name,
                i,
                server,
                self._environ,
                on_ready=self._on_ready,
                on_change=self._on_change,
                on_notification=self._on_upstream_notification,
                checks=checks,
            )
            for i in range(server.replicas)
        ]

    def connection(self) -> ServerConnection:
        return ServerConnection(self.app, self.sealer)

    def add_own_tool(self, tool: t.Tool, fn: ToolFn) -> None:
        """Offer ``tool`` from the gateway itself; an upstream tool of the same exposed name
        is hidden (never shadows it)."""
        self._own_tools[tool.name] = ToolEntry(tool, fn)
        self.app.add_tool(tool, fn)

    def set_own_resources(self, entries: Mapping[str, ResourceEntry]) -> None:
        """Replace the resources the gateway offers itself (upstream ones keep theirs;
        a namesake upstream resource is hidden). Call ``app.list_changed`` to tell."""
        for uri in self._own_resources:
            self.app.resources.pop(uri, None)
        self._own_resources = dict(entries)
        self.app.resources.update(self._own_resources)

    async def run(self) -> None:
        """Supervise every upstream, and those mounted later, until cancelled."""
        async with anyio.create_task_group() as tg:
            self._tg = tg
            for name in self.replicas:
                self._start(name)
            try:
                await anyio.sleep_forever()
            finally:
                self._tg = None

    def _start(self, name: str) -> None:
        assert self._tg is not None
        scope, stopped = anyio.CancelScope(), anyio.Event()
        self._running[name] = (scope, stopped)
        self._tg.start_soon(self._supervise, self.replicas[name], scope, stopped)

    @staticmethod
    async def _supervise(
        replicas: list[Replica], scope: anyio.CancelScope, stopped: anyio.Event
    ) -> None:
        try:
            with scope:
                async with anyio.create_task_group() as tg:
                    for replica in replicas:
                        tg.start_soon(replica.run)
        finally:
            stopped.set()

    # -- servers added and removed while running (the hub's instances) --------------------

    async def mount(
        self,
        name: str,
        server: ServerConfig,
        *,
        checks: ConnectChecks = NO_CHECKS,
    ) -> None:
        """Add upstream ``name`` now (its lists join the catalog once it is ready). Its
        replicas make each connection (reconnections too) only if ``checks.before`` agrees,
        and send on it only once ``checks.after`` agrees that the connected peer is right.

        Raises:
            ValueError: ``name`` is taken, or the gateway is not running.
        """
        if name in self.replicas:
            raise ValueError(f"an upstream named {name!r} is already mounted")
        if self._tg is None:
            raise ValueError("the gateway is not running")
        self._servers[name] = server
        self.replicas[name] = self._replicas(name, server, checks)
        self._turns[name] = itertools.count()
        self._start(name)

    async def unmount(self, name: str, *, wait: float = 5.0) -> None:
        """Stop upstream ``name`` (waiting at most ``wait`` seconds) and drop its lists;
        clients are told their lists changed. Unknown names are ignored."""
        if name not in self.replicas:
            return
        scope, stopped = self._running.pop(name)
        scope.cancel()
        with anyio.move_on_after(wait):
            await stopped.wait()
        del self.replicas[name], self._servers[name], self._turns[name]
        await self.rebuild(LIST_KINDS)

    def mounted(self, name: str) -> bool:
        return name in self.replicas

    async def wait_ready(self, name: str, timeout: float) -> bool:
        """Whether a replica of ``name`` is ready (waiting at most ``timeout`` seconds)
        and its lists are in the catalog."""
        with anyio.move_on_after(timeout):
            while name in self.replicas and not (
                self._ready(name) and name in self.catalog.uri_prefixes
            ):
                await anyio.sleep(READY_POLL)
        return bool(self._ready(name)) and name in self.catalog.uri_prefixes

    async def settle(self) -> None:
        """Wait until every upstream has had its first start attempt (ready or failed),
        at most its ``startup_timeout``: a client that lists once then sees them."""
        limit = max((s.startup_timeout for s in self._servers.values()), default=0.0)
        with anyio.move_on_after(limit + 1):
            # A snapshot: upstreams are mounted and unmounted while we wait (the hub's).
            for replicas in list(self.replicas.values()):
                for replica in replicas:
                    await replica.settled.wait()

    def drop_parked(self, lapsed: Callable[[Owner], bool]) -> int:
        """AU-5: drop every replica's parked calls whose owner ``lapsed``; how many."""
        return sum(
            replica.drop_parked(lapsed)
            for replicas in self.replicas.values()
            for replica in replicas
        )

    # -- status ----------------------------------------------------------------------------

    def ready(self) -> bool:
        return all(self._ready(name) for name in self.replicas)

    def status(self) -> list[JSONObject]:
        return [
            {
                "server": r.server,
                "replica": r.index,
                "state": r.state.value,
                "pid": r.pid,
                "restarts": r.restarts,
                "lastError": r.last_error,
                "era": r.session.server.era.value if r.session and r.session.server else None,
            }
            for replicas in self.replicas.values()
            for r in replicas
        ]

    def _ready(self, server: str) -> list[Replica]:
        return [r for r in self.replicas.get(server, []) if r.state is ReplicaState.READY]

    def pick(self, server: str, ctx: ToolContext | None = None) -> Replica:
        """A ready replica of ``server`` for the request behind ``ctx``: the one its call is
        parked at when it is the retry of an input round; else one with the fewest calls in
        flight, in turn (a stdio upstream's own requests can be attributed to a call only
        while its replica has one call in flight).

        Raises:
            UpstreamUnavailable: none is ready.
        """
        ready = self._ready(server)
        if not ready:
            raise UpstreamUnavailable(f"no ready replica of {server}")
        if len(ready) == 1:
            return ready[0]
        pending = None if ctx is None else ctx.input_responses.get(PENDING_KEY)
        if isinstance(pending, str):
            for replica in ready:
                if replica.parks(pending):
                    return replica
        fewest = min(replica.calls_in_flight for replica in ready)
        idle = [replica for replica in ready if replica.calls_in_flight == fewest]
        return idle[next(self._turns[server]) % len(idle)]

    # -- catalog -----------------------------------------------------------------------------

    def _prefix(self, server: str) -> str:
        prefix = self._servers[server].prefix
        return f"{server}{self.config.gateway.separator}" if prefix is None else prefix

    async def _on_ready(self, replica: Replica) -> None:
        await self.rebuild(LIST_KINDS)

    async def _on_change(self, replica: Replica, kinds: tuple[str, ...]) -> None:
        await self.rebuild(kinds)

    async def _on_upstream_notification(self, replica: Replica, note: Notification) -> None:
        if note.method == "notifications/resources/updated":
            uri = (note.params or {}).get("uri")
            exposed = self.namespaces.updated(replica.server, uri) if isinstance(uri, str) else None
            if exposed is not None:
                await self.app.resource_updated(exposed)

    async def rebuild(self, announce: tuple[str, ...]) -> None:
        """Rebuild the catalog from the ready replicas; tell clients about ``announce``.
        Each server's tools first pass ``tool_screen`` (tool pinning), and its prompts,
        resources and templates ``definition_screen``, when set. Callers that queue up
        while a rebuild runs share the next one. Never raises (the replica asking is not
        to blame): a server whose lists cannot be offered is left out, and should the
        whole rebuild fail, clients keep the catalog they have (TC-3, UP-4)."""
        self._rebuilds_asked += 1
        asked = self._rebuilds_asked
        async with self._rebuild_lock:
            if self._rebuilds_done < asked:
                # Every rebuild asked for so far is served by this one: it reads the
                # listings as they are now, after those callers updated them.
                self._rebuilds_done = self._rebuilds_asked
                await self._rebuild_now()
        for kind in announce:
            await self.app.list_changed(kind)

    async def _rebuild_now(self) -> None:
        try:
            offered = {
                server: ready[0].listings
                for server in self.replicas
                if (ready := self._ready(server))
            }
            listings, held = await screen_listings(
                offered, self._prefix, self.tool_screen, self.definition_screen, self._complaints
            )
            catalog, offer = await build_offer(
                listings,
                held,
                self.pick,
                own_tools=dict(self._own_tools),
                own_resources=dict(self._own_resources),
                problems=self._complaints.add,
            )
        except Exception:
            logger.exception("the catalog could not be rebuilt; clients keep the last one")
            return
        offer.install(self.app)
        self._complaints.report()
        self.catalog = catalog

    async def _subscription(self, uri: str, on: bool) -> None:
        """Subscribe upstream on a URI's first subscriber, unsubscribe after its last."""
        pending = self.app.pending_unsubscribes
        changes = [(u, False) for u in pending] + [(uri, on)]
        pending.clear()
        for exposed, subscribe in changes:
            if subscribe:
                self._subscribers[exposed] += 1
                if self._subscribers[exposed] > 1:
                    continue
            else:
                if self._subscribers[exposed] <= 0:
                    continue
                self._subscribers[exposed] -= 1
                if self._subscribers[exposed] > 0:
                    continue
                del self._subscribers[exposed]
            routed = self._route_uri(exposed)
            if routed is not None:
                server, original = routed
                for replica in self.replicas.get(server, []):
                    await replica.subscribe(original, subscribe)

    def _route_uri(self, uri: str) -> tuple[str, str] | None:
        return self.namespaces.route(uri)

    async def _complete(
        self, ctx: ToolContext, ref: JSONObject, argument: JSONObject, context: JSONObject
    ) -> JSONObject:
        kind, name = completion_ref(ref)  # as the policy read it (AZ-1); else -32602
        if kind == "prompt":
            entry = self.catalog.prompts.get(name)
            upstream_ref = {"type": ref["type"], "name": entry.original} if entry else None
        else:
            entry = self.catalog.resources.get(name) or self.catalog.templates.get(name)
            upstream_ref = {"type": ref["type"], "uri": entry.original} if entry else None
        if entry is None:
            return {"values": [], "total": 0, "hasMore": False}
        params = {"ref": upstream_ref, "argument": argument, "context": context}
        result = await self.pick(entry.server, ctx).call("completion/complete", params, ctx)
        completion = result.get("completion")
        return completion if isinstance(completion, dict) else {"values": []}
