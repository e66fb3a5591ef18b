"""The workspace MCP server: shared state, one ``ServerApp`` per connection, and fan-out.

Every connection gets its own ``ServerApp`` whose tool handlers are bound to that
connection's ``AgentSession`` (so a handler knows who calls without ambient state); the
workspaces, members, locks and logs are shared here. A change is announced to every live
connection's app: ``notifications/resources/updated`` for the files it touched and the
workspace's change log, which the core delivers to 2025-11-25 subscribers and 2026-07-28
``subscriptions/listen`` streams alike.
"""

from __future__ import annotations

import functools
import logging
import os
import secrets
import stat
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Concatenate, Final, ParamSpec, TypeVar

import anyio
import anyio.to_thread

from bastion.errors import BastionError
from bastion.protocol.request_state import RequestStateSealer
from bastion.sandbox import Sandbox
from bastion.server.connection import ServerConnection
from bastion.server.context import ToolContext
from bastion.server.registry import ServerApp
from bastion.workspace import resources, tools_collab, tools_exec, tools_read, tools_write
from bastion.workspace.invocation import Invocation
from bastion.workspace.limits import WorkspaceLimits
from bastion.workspace.policy import DEFAULT_POLICY, CommandPolicy
from bastion.workspace.session import NOTIFY_TIMEOUT, AgentSession, WorkspaceConnection
from bastion.workspace.store import Workspace, WorkspaceRoot
from bastion.workspace.toolkit import ToolSpec

__all__ = ["SERVER_NAME", "WorkspaceServer"]

logger = logging.getLogger(__name__)

SERVER_NAME: Final = "bastion-workspace"
SERVER_VERSION: Final = "0.1.0"
INSTRUCTIONS: Final = (
    "Shared workspaces for coding agents. Read a file to get its version, and pass it as "
    "expected_version when you write or edit, so you never overwrite another agent's work. "
    "join_workspace to appear in list_members, receive broadcasts and hold locks. Files are "
    "resources at workspace://{workspace}/{path}; subscribe to hear about changes, or to "
    "workspace-meta://{workspace}/changes to hear about all of them."
)
P = ParamSpec("P")
T = TypeVar("T")


class WorkspaceServer:
    """Workspaces under ``root``, served to any number of connections."""

    def __init__(
        self,
        root: Path,
        limits: WorkspaceLimits | None = None,
        *,
        sealer: RequestStateSealer | None = None,
        sandbox: Sandbox | None = None,
        policy: CommandPolicy = DEFAULT_POLICY,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        trust_principal: bool = False,
        disk_quota: int | None = None,
    ) -> None:
        self.limits = limits or WorkspaceLimits()
        # True only under a gateway that passes principals (``--trust-gateway-principal``):
        # then a request's ``io.bastion/principal`` says who calls.
        self.trust_principal = trust_principal
        self.root = WorkspaceRoot(root, self.limits, clock=clock, wall=wall, disk_quota=disk_quota)
        try:
            # Commands run as the sandbox user, who must be able to pass through the root.
            if sandbox is not None and sandbox.default_backend != "none" and os.geteuid() == 0:
                mode = os.fstat(self.root.fd).st_mode
                if not mode & stat.S_IXOTH:
                    os.fchmod(self.root.fd, stat.S_IMODE(mode) | 0o011)
            self.runner = tools_exec.Runner(sandbox, policy, clock=clock, wall=wall)
        except BaseException:
            self.root.close()  # a failed start leaves no quota image mounted
            raise
        # requestState keys live as long as the process: a restart invalidates rounds.
        self.sealer = sealer or RequestStateSealer([secrets.token_bytes(32)])
        # The apps of live connections, by identity (a ServerApp is not hashable).
        self._apps: dict[int, ServerApp] = {}
        self.specs: tuple[ToolSpec, ...] = (
            *tools_read.SPECS,
            *tools_write.SPECS,
            *tools_collab.SPECS,
            *tools_exec.SPECS,
        )

    def close(self) -> None:
        self.root.close()

    # -- connections --------------------------------------------------------------------

    def connection(self, *, modern: bool = True) -> WorkspaceConnection:
        """A new connection (the factory a transport is given)."""
        app = ServerApp(name=SERVER_NAME, version=SERVER_VERSION, instructions=INSTRUCTIONS)
        inner = ServerConnection(app, self.sealer, modern=modern)
        connection = WorkspaceConnection(self, app, inner)

        def invocation(ctx: ToolContext) -> Invocation:
            return Invocation(self, connection.session, ctx)

        for spec in self.specs:
            app.add_tool(spec.tool, spec.bind(invocation))
        resources.install(app, self)
        return connection

    def track(self, app: ServerApp) -> None:
        """``app`` hears announcements until ``untrack``."""
        self._apps[id(app)] = app

    def untrack(self, app: ServerApp) -> None:
        self._apps.pop(id(app), None)

    def session_ended(self, session: AgentSession) -> None:
        """Members tied to a closed connection leave; their locks go with them."""
        for record in self.root.known():
            member = record.collab.by_session(session)
            if member is not None:
                record.collab.leave(member)

    # -- file system ----------------------------------------------------------------------

    async def in_workspace(
        self,
        ws: Workspace,
        fn: Callable[Concatenate[int, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """Run ``fn(workspace_fd, ...)`` in a worker thread (it blocks on the disk)."""

        def run() -> T:
            with self.root.opened(ws.name) as fd:
                return fn(fd, *args, **kwargs)

        return await anyio.to_thread.run_sync(functools.partial(run))

    # -- announcements ---------------------------------------------------------------------

    async def updated(self, uris: Iterable[str]) -> None:
        """``notifications/resources/updated`` to every subscriber of each of ``uris``."""
        wanted = list(dict.fromkeys(uris))
        for app in list(self._apps.values()):
            for uri in wanted:
                await _bounded(app.resource_updated(uri))

    async def list_changed(self, kind: str) -> None:
        for app in list(self._apps.values()):
            await _bounded(app.list_changed(kind))


async def _bounded(notification: Awaitable[None]) -> None:
    """Await one fan-out step; a slow or gone client must not stall the caller."""
    with anyio.move_on_after(NOTIFY_TIMEOUT):
        try:
            await notification
        except (BastionError, anyio.BrokenResourceError, anyio.ClosedResourceError):
            logger.debug("a client went away during a notification")
