"""What a workspace tool handler is given: the server, the caller's session, the request.

This is also the one place an agent's identity is decided (``agent``): a member token
names a member in either protocol revision; otherwise a 2025-11-25 session that joined
the workspace is that member; otherwise the caller is ``anonymous``. A gateway that has
authenticated its callers will hand a principal here (see the README's seams).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Concatenate, ParamSpec, TypeVar

from bastion.protocol.versions import Era
from bastion.workspace.collab import Agent, Member
from bastion.workspace.errors import InvalidInput

if TYPE_CHECKING:
    from bastion.server.context import ToolContext
    from bastion.workspace.server import WorkspaceServer
    from bastion.workspace.session import AgentSession
    from bastion.workspace.store import Workspace

__all__ = ["ANONYMOUS", "Invocation"]

ANONYMOUS = "anonymous"
P = ParamSpec("P")
T = TypeVar("T")


class Invocation:
    def __init__(self, server: WorkspaceServer, session: AgentSession, ctx: ToolContext) -> None:
        self.server = server
        self.session = session
        self.ctx = ctx

    @property
    def session_bound(self) -> bool:
        """True when membership can be tied to this connection (a 2025-11-25 session)."""
        return self.ctx.era is Era.LEGACY and self.session.stateful

    def workspace(self, name: str) -> Workspace:
        return self.server.root.get(name)

    def find_member(self, ws: Workspace, token: str | None) -> Member | None:
        """Raises NotFound for a token that is not this workspace's."""
        if token is not None:
            return ws.collab.by_token(token)
        if self.session_bound:
            return ws.collab.by_session(self.session)
        return None

    def member(self, ws: Workspace, token: str | None) -> Member:
        """The calling member. Raises InvalidInput if the caller has not joined."""
        found = self.find_member(ws, token)
        if found is None:
            how = "" if self.session_bound else " and pass the member_token it returns"
            raise InvalidInput(f"join workspace {ws.name} first (join_workspace){how}")
        return found

    def agent(self, ws: Workspace, token: str | None) -> Agent:
        """Who this call acts as, for attribution and locks."""
        found = self.find_member(ws, token)
        if found is not None:
            return found.agent
        if self.session_bound:
            return Agent(f"{ANONYMOUS}:{self.session.key}", ANONYMOUS)
        return Agent(ANONYMOUS, ANONYMOUS)

    async def fs(
        self, ws: Workspace, fn: Callable[Concatenate[int, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run a blocking ``jail``/``tree`` function on the workspace's descriptor."""
        return await self.server.in_workspace(ws, fn, *args, **kwargs)
