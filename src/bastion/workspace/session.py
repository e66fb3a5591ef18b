"""One client connection as the workspace sees it, and the wrapper that tells us about it.

``WorkspaceConnection`` is the ``McpConnection`` a transport serves: it delegates the MCP
work to a ``ServerConnection`` over this connection's own ``ServerApp`` (whose tool
handlers are bound to this ``AgentSession``), and adds what the workspace needs: the peer
for unsolicited notifications (broadcasts), and a hook when the connection ends (members
tied to it leave, their locks are released). A 2026-07-28 request over HTTP gets a fresh
connection each time; it is "live" (hears resource updates) only while it runs, which for
``subscriptions/listen`` is as long as the stream is open.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Final

import anyio

from bastion._types import JSONObject, JSONValue
from bastion.errors import BastionError
from bastion.server.context import LOG_LEVELS
from bastion.server.registry import ServerApp

if TYPE_CHECKING:
    from bastion.protocol.jsonrpc import Notification
    from bastion.protocol.types import LoggingLevel
    from bastion.server.connection import ServerConnection
    from bastion.session.peer import Call, Peer
    from bastion.workspace.server import WorkspaceServer

__all__ = ["NOTIFY_TIMEOUT", "AgentSession", "WorkspaceConnection"]

NOTIFY_TIMEOUT: Final = 2.0  # seconds one slow client may hold up a broadcast or update


class AgentSession:
    """The workspace's view of one client connection."""

    def __init__(self, inner: ServerConnection) -> None:
        self.key = f"s-{secrets.token_hex(4)}"
        self._inner = inner
        self._peer: Peer | None = None

    @property
    def attached(self) -> bool:
        """True while the connection lasts beyond one request (stdio, an HTTP session)."""
        return self._peer is not None

    def attach(self, peer: Peer | None) -> None:
        self._peer = peer

    @property
    def stateful(self) -> bool:
        """True for an initialized 2025-11-25 session: it can be told things unasked."""
        return self._peer is not None and self._inner.version is not None

    async def log(self, level: LoggingLevel, data: JSONValue, logger: str) -> bool:
        """Send ``notifications/message`` outside any request, if the client's level lets
        it through; False when it could not be delivered."""
        if not self.stateful or LOG_LEVELS[level] < LOG_LEVELS.get(self._inner.log_level, 0):
            return False
        params: JSONObject = {"level": level, "logger": logger, "data": data}
        return await self.notify("notifications/message", params)

    async def notify(self, method: str, params: JSONObject) -> bool:
        peer = self._peer
        if peer is None:
            return False
        with anyio.move_on_after(NOTIFY_TIMEOUT):
            try:
                await peer.notify(method, params)
            except (BastionError, anyio.BrokenResourceError, anyio.ClosedResourceError):
                return False
            return True
        return False


class WorkspaceConnection:
    """A ``ServerConnection`` plus the session bookkeeping of the workspace."""

    def __init__(self, server: WorkspaceServer, app: ServerApp, inner: ServerConnection) -> None:
        self._server = server
        self.app = app
        self.inner = inner
        self.session = AgentSession(inner)

    async def __call__(self, call: Call) -> JSONValue:
        if self.session.attached:
            return await self.inner(call)
        # A connection made for one request: live (hearing updates) while it runs.
        self._server.track(self.app)
        try:
            return await self.inner(call)
        finally:
            self._server.untrack(self.app)

    async def on_notification(self, note: Notification) -> None:
        await self.inner.on_notification(note)

    def attach(self, peer: Peer) -> None:
        self.session.attach(peer)
        self.inner.attach(peer)
        self._server.track(self.app)

    def detach(self) -> None:
        self._server.untrack(self.app)
        self.inner.detach()
        self.session.attach(None)
        self._server.session_ended(self.session)
