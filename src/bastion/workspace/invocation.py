"""What a workspace tool handler is given: the server, the caller's session, the request.

This is also the one place an agent's identity is decided (``agent``): a member token
names a member in either protocol revision; otherwise a 2025-11-25 session that joined
the workspace is that member; otherwise the caller is ``anonymous``. A server started with
``trust_principal`` (only under a gateway, which sets ``io.bastion/principal`` in each
request's ``_meta`` and never forwards a client's) takes the caller's principal from there:
a principal that never joined acts as itself, a member token works only for the principal
that joined with it, and the gateway's one upstream session is nobody's membership.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING, Concatenate, Final, ParamSpec, TypeVar

from bastion.protocol.meta import META_PRINCIPAL
from bastion.protocol.versions import Era
from bastion.workspace.collab import PRINCIPAL_ID, Agent, Member
from bastion.workspace.errors import InvalidInput

if TYPE_CHECKING:
    from bastion.server.context import ToolContext
    from bastion.workspace.server import WorkspaceServer
    from bastion.workspace.session import AgentSession
    from bastion.workspace.store import Workspace

__all__ = ["ANONYMOUS", "MAX_PRINCIPAL", "Invocation"]

ANONYMOUS = "anonymous"
MAX_PRINCIPAL: Final = 256  # characters of a principal id the gateway may pass
P = ParamSpec("P")
T = TypeVar("T")


class Invocation:
    def __init__(self, server: WorkspaceServer, session: AgentSession, ctx: ToolContext) -> None:
        self.server = server
        self.session = session
        self.ctx = ctx

    @cached_property
    def principal(self) -> str | None:
        """The gateway's authenticated caller, when this server trusts it to say.

        Raises:
            InvalidInput: the gateway passed something that is not a principal id.
        """
        if not self.server.trust_principal:
            return None
        value = self.ctx.meta.get(META_PRINCIPAL)
        if value is None:
            return None
        if not isinstance(value, str) or not value.isprintable():
            raise InvalidInput("the gateway passed an unusable principal")
        if not 0 < len(value) <= MAX_PRINCIPAL:
            raise InvalidInput("the gateway passed an unusable principal")
        return value

    @property
    def session_bound(self) -> bool:
        """True when membership can be tied to this connection (a 2025-11-25 session that
        is one client's own: a gateway's upstream session carries every principal)."""
        return self.principal is None and self.ctx.era is Era.LEGACY and self.session.stateful

    def workspace(self, name: str) -> Workspace:
        return self.server.root.get(name)

    def find_member(self, ws: Workspace, token: str | None) -> Member | None:
        """Raises NotFound for a token that is not this workspace's."""
        if token is not None:
            return ws.collab.by_token(token, self.principal)
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
        if self.principal is not None:
            return Agent(PRINCIPAL_ID + self.principal, self.principal, self.principal)
        if self.session_bound:
            return Agent(f"{ANONYMOUS}:{self.session.key}", ANONYMOUS)
        return Agent(ANONYMOUS, ANONYMOUS)

    async def fs(
        self, ws: Workspace, fn: Callable[Concatenate[int, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run a blocking ``jail``/``tree`` function on the workspace's descriptor."""
        return await self.server.in_workspace(ws, fn, *args, **kwargs)
