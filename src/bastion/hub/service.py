"""The hub's connections: a gateway whose upstreams are the running instances a client
connects to, and the handlers of the three tools that list, connect and disconnect them
(their definitions, and how an instance is shown, are ``entries``').

``bastion hub`` speaks stdio only, so one hub process serves one client: its connections
are that client's. An instance the client connects to is mounted exactly like a configured
upstream (``<name>__<tool>``, progress, cancellation and elicitation forwarded); when the
instance dies (its process gone or its endpoint silent, as ``Discovery`` decides), it is
unmounted and the client is told with a log message and list-changed notifications. Each
connection its upstream makes (reconnections too) is made only to a listener of our uid,
and nothing is sent on it until the socket that answered is found to be our uid's too
(the port may change hands between that first check and the connection). Each active
instance is also a resource (``bastion-hub://instances/<id>``), so the resource list
changes as instances come and go.

Connect on first use: a call of ``<name>__<tool>`` (a prompt ``<name>__<prompt>``, a
resource URI ``<name-scheme>+<uri>``) that nothing serves yet connects the active instance
that name belongs to (the ``mount_name`` it would get now; several candidates connect none)
and is then served, within ``CONNECT_ON_USE_WAIT``; otherwise it is unknown as usual. So a
client that remembers tool names across hub restarts, or calls without listing, works.
Lists stay lazy: ``tools/list`` shows the hub's own tools and those of connected instances
only. A one-shot client that must list before calling (the MCP Inspector CLI) starts the
hub with ``connect_at_start`` (``bastion hub --connect NAME``); lists wait for those.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Final

import anyio
import anyio.to_thread

from bastion._types import ConnectChecks, JSONObject
from bastion.catalog.names import uri_prefix
from bastion.config import ServerConfig
from bastion.gateway import Gateway
from bastion.hub.discovery import Discovery
from bastion.hub.entries import (
    CONNECT_TOOL,
    DISCONNECT_TOOL,
    LIST_TOOL,
    failure,
    instance_uri,
    mount_name,
    public,
    resource_entry,
)
from bastion.hub.liveness import connected_to_ours
from bastion.hub.registry import InstanceRecord
from bastion.hub.tracker import InstanceState
from bastion.protocol import types as t
from bastion.server.context import ToolContext
from bastion.server.registry import NameKind

__all__ = ["CONNECT_ON_USE_WAIT", "CONNECT_WAIT", "DISCOVERY_WAIT", "Hub"]

logger = logging.getLogger(__name__)

CONNECT_WAIT: Final = 15.0  # seconds instances_connect waits for the instance's lists
CONNECT_ON_USE_WAIT: Final = 5.0  # seconds a call of a not yet connected instance waits
DISCOVERY_WAIT: Final = 3.0  # seconds a just-started hub waits for its first look around


class Hub:
    """Connections of one client to the discovered instances, over a ``Gateway``."""

    def __init__(
        self, gateway: Gateway, discovery: Discovery, *, connect_at_start: Sequence[str] = ()
    ) -> None:
        self.gateway = gateway
        self.discovery = discovery
        self._mounted: dict[str, str] = {}  # instance id -> upstream name
        self._lock = anyio.Lock()
        self._connect_at_start = tuple(connect_at_start)
        self._started = anyio.Event()  # set once the connections asked at start are made
        for tool, fn in (
            (LIST_TOOL, self._list),
            (CONNECT_TOOL, self._connect),
            (DISCONNECT_TOOL, self._disconnect),
        ):
            gateway.add_own_tool(tool, fn)
        gateway.app.settle_hook = self._settle
        gateway.app.resolve_hook = self._resolve

    async def run(self) -> None:
        """Follow the instances until cancelled (the gateway and discovery run beside)."""
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._connect_first)
            seen = self.discovery.generation
            await self._instances_changed()
            while True:
                seen = await self.discovery.wait_changed(seen)
                await self._instances_changed()

    async def _discovered(self) -> None:
        """Wait (bounded) for discovery's first look at the registry."""
        with anyio.move_on_after(DISCOVERY_WAIT):
            await self.discovery.settle()

    async def _connect_first(self) -> None:
        try:
            await self._discovered()
            for wanted in self._connect_at_start:
                record = self._find({"instance": wanted})
                try:
                    if isinstance(record, str):
                        raise ValueError(record)
                    if await self._ensure(record, CONNECT_ON_USE_WAIT) is None:
                        raise ValueError("it did not answer in time")
                except ValueError as exc:  # also Gateway.mount's refusals: never fatal
                    logger.warning("hub: not connected to %r at start: %s", wanted, exc)
        finally:
            self._started.set()

    async def _settle(self) -> None:
        """Before a list or a "not found": the start's connections, then the upstreams."""
        if self._connect_at_start:
            with anyio.move_on_after(DISCOVERY_WAIT + CONNECT_ON_USE_WAIT):
                await self._started.wait()
        await self.gateway.settle()

    async def _resolve(self, kind: NameKind, name: str) -> None:
        """Connect on first use: mount the active instance ``name`` belongs to, if exactly
        one does and it is not connected yet; its entries are there when this returns."""
        await self._discovered()
        async with self._lock:
            record = self._owner(kind, name)
        if record is not None:
            logger.info("hub: %s %r belongs to %s; connecting", kind, name, record.name)
            await self._ensure(record, CONNECT_ON_USE_WAIT)

    def _owner(self, kind: NameKind, name: str) -> InstanceRecord | None:
        """The one unconnected active instance whose namespace ``name`` is in (as it would
        be mounted now), or None (none, or several: a name must not pick one by chance)."""
        taken = set(self.gateway.replicas)
        owners = []
        for record in self.discovery.instances():
            if record.id in self._mounted:
                continue
            server = mount_name(record.name, taken)
            prefix = uri_prefix(server, False) if kind == "resource" else self._prefix(server)
            if name.startswith(prefix) and len(name) > len(prefix):
                owners.append(record)
        if len(owners) > 1:
            logger.info("hub: %r could belong to %d instances; connecting none", name, len(owners))
        return owners[0] if len(owners) == 1 else None

    # -- keeping up with the instances -----------------------------------------------------

    async def _instances_changed(self) -> None:
        active = self.discovery.instances()
        self.gateway.set_own_resources({instance_uri(r): resource_entry(r) for r in active})
        async with self._lock:
            for instance_id, server in list(self._mounted.items()):
                # Not ACTIVE is enough: a RETRYING instance may have stopped and its port
                # been taken by another user, whom the mounted upstream would reconnect to.
                # Connect-on-use mounts it again once it is ACTIVE.
                if self.discovery.state(instance_id) is not InstanceState.ACTIVE:
                    del self._mounted[instance_id]
                    await self.gateway.unmount(server)  # tells clients its lists changed
                    logger.info("hub: instance %s (%s) is gone; disconnected", instance_id, server)
                    await self.gateway.app.log(
                        "warning",
                        {"event": "instance gone", "instance": instance_id, "server": server},
                        "bastion.hub",
                    )
        await self.gateway.app.list_changed("resources")

    # -- the tools ---------------------------------------------------------------------------

    async def _list(self, ctx: ToolContext, args: JSONObject) -> t.CallToolResult:
        await self._discovered()
        rows = [self._row(r) for r in self.discovery.instances()]
        if rows:
            lines = [
                f"{r['name']} (id {r['id']}, pid {r['pid']}, {r['url']}, {r['project']})"
                + (f": connected as {r['prefix']}*" if r["connected"] else "")
                for r in rows
            ]
            text = "Running instances:\n" + "\n".join(lines)
        else:
            text = "No running instances."
        return t.CallToolResult(
            content=[t.TextContent(text=text)], structuredContent={"instances": rows}
        )

    async def _connect(self, ctx: ToolContext, args: JSONObject) -> t.CallToolResult:
        await self._discovered()
        record = self._find(args)
        if isinstance(record, str):
            return failure(record)
        server = await self._ensure(record, CONNECT_WAIT)
        if server is None:
            return failure(
                f"instance {record.name} ({record.id}) did not answer in time, or its port"
                " is no longer this user's (the hub's log says which)"
            )
        prefix = self._prefix(server)
        tools = sorted(n for n, e in self.gateway.catalog.tools.items() if e.server == server)
        text = f"Connected to {record.name} ({record.id}); its tools are now {prefix}*:\n" + (
            "\n".join(tools) or "(none)"
        )
        return t.CallToolResult(
            content=[t.TextContent(text=text)],
            structuredContent={"id": record.id, "server": server, "prefix": prefix, "tools": tools},
        )

    async def _ensure(self, record: InstanceRecord, wait: float) -> str | None:
        """Mount ``record`` unless it is, and wait (at most ``wait`` s) until its lists are
        in; its upstream name, or None when its port's listener is not ours right now (not
        mounted) or it did not answer in time (unmounted again)."""
        async with self._lock:
            server = self._mounted.get(record.id)
            if server is None:
                # The last ping may be seconds old: another user could have bound the port
                # of a stopped instance since, and would get the entry's credential (and,
                # on a reconnection, calls): asked now and before each connection it makes,
                # in a thread (reading /proc/net takes milliseconds with many sockets). The
                # port may still change hands before the connection is made: each one is
                # also checked once it is up, before anything is sent on it.
                ours = partial(anyio.to_thread.run_sync, self.discovery.listener_ours, record)
                if not await ours():
                    return None
                server = mount_name(record.name, set(self.gateway.replicas))
                await self.gateway.mount(
                    server,
                    _upstream(record),
                    checks=ConnectChecks(before=ours, after=connected_to_ours),
                )
                self._mounted[record.id] = server
        if await self.gateway.wait_ready(server, wait):
            return server
        async with self._lock:
            if self._mounted.get(record.id) == server:
                del self._mounted[record.id]
                await self.gateway.unmount(server)
        return None

    async def _disconnect(self, ctx: ToolContext, args: JSONObject) -> t.CallToolResult:
        wanted = str(args.get("instance", ""))
        async with self._lock:
            match = [
                (i, s)
                for i, s in self._mounted.items()
                if wanted in (i, s) or self._named(i, wanted)
            ]
            if not match:
                return failure(f"not connected to an instance {wanted!r}")
            instance_id, server = match[0]
            del self._mounted[instance_id]
            await self.gateway.unmount(server)
        return t.CallToolResult(
            content=[t.TextContent(text=f"Disconnected from {server} ({instance_id}).")],
            structuredContent={"id": instance_id, "server": server},
        )

    # -- helpers -----------------------------------------------------------------------------

    def _find(self, args: JSONObject) -> InstanceRecord | str:
        """The active instance ``args['instance']`` names (id first, then name), or why not."""
        wanted = args.get("instance")
        if not isinstance(wanted, str) or not wanted:
            return "give the instance's id or name (see instances_list)"
        by_id = self.discovery.get(wanted)
        if by_id is not None:
            return by_id
        named = [r for r in self.discovery.instances() if r.name == wanted]
        if len(named) == 1:
            return named[0]
        if named:
            ids = ", ".join(r.id for r in named)
            return f"several instances are named {wanted!r}; use an id: {ids}"
        return f"no running instance {wanted!r} (see instances_list)"

    def _named(self, instance_id: str, wanted: str) -> bool:
        record = self.discovery.get(instance_id)
        return record is not None and record.name == wanted

    def _separator(self) -> str:
        return self.gateway.config.gateway.separator

    def _prefix(self, server: str) -> str:
        return f"{server}{self._separator()}"

    def _row(self, record: InstanceRecord) -> JSONObject:
        server = self._mounted.get(record.id)
        state = self.discovery.state(record.id)
        return {
            **public(record),
            "state": state.value if state is not None else "gone",
            "connected": server is not None,
            "prefix": None if server is None else self._prefix(server),
        }


def _upstream(record: InstanceRecord) -> ServerConfig:
    headers: Mapping[str, str] = {}
    if record.credential is not None:
        headers = {"Authorization": f"Bearer {record.credential}"}
    return ServerConfig(url=record.url, headers=dict(headers), startup_timeout=CONNECT_WAIT)
