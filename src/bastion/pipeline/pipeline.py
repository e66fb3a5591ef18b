"""The pipeline: the ordered stages every request passes, composed once at start-up.

Order (outermost first): audit (records in ``finally``), authorize, rate-limit, validate,
sanitise, then route (the MCP layer and the upstreams). Authentication happens before the
pipeline, in the transport, because only the transport can answer 401 (HTTP) or knows the
local user (stdio); the principal it established travels in every ``Exchange``.
"""

from __future__ import annotations

from collections.abc import Sequence

from bastion.auth.principal import Principal
from bastion.pipeline.connection import GuardedConnection
from bastion.pipeline.stage import Stage, compose
from bastion.pipeline.subscribed import SubscribedSessions
from bastion.server.connection import ServerConnection

__all__ = ["Pipeline"]


class Pipeline:
    def __init__(
        self, stages: Sequence[Stage], *, sessions: SubscribedSessions | None = None
    ) -> None:
        self.stages = tuple(stages)
        self._sessions = sessions
        self._handler = compose(self.stages)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(stage.name for stage in self.stages)

    def guard(
        self, inner: ServerConnection, principal: Principal, session_id: str | None = None
    ) -> GuardedConnection:
        """``inner``, serving ``principal``, with every request run through the stages."""
        return GuardedConnection(
            inner, principal, self._handler, session_id=session_id, sessions=self._sessions
        )
