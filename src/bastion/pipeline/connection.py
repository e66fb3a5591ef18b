"""An MCP connection whose every request runs through the pipeline, as one principal.

``GuardedConnection`` stands where a transport expects an ``McpConnection``: it turns each
request into an ``Exchange`` (who, what, which session) and hands it to the composed stages,
whose innermost one is the wrapped ``ServerConnection``, which it tells who it serves (so a
``requestState`` or parked call is bound to the principal, and lists and reads are labelled
``cacheScope: private``). Notifications and wiring pass through; an attached connection is
in the gateway's ``SubscribedSessions``, whose subscriptions the policy polls re-decide.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from bastion._types import JSONObject, JSONValue
from bastion.auth.principal import Principal
from bastion.errors import InvalidParams, MethodNotFound, ProtocolError
from bastion.pipeline.exchange import Exchange
from bastion.pipeline.stage import Handler
from bastion.pipeline.targets import subscriptions_of, target_of
from bastion.protocol.jsonrpc import Notification
from bastion.protocol.methods import CLIENT_METHODS
from bastion.protocol.versions import META_CLIENT_CAPABILITIES, Era
from bastion.server.connection import ServerConnection
from bastion.session.peer import Call, Peer

if TYPE_CHECKING:
    from bastion.pipeline.subscribed import SubscribedSessions
    from bastion.policy.decision import Target

__all__ = ["GuardedConnection", "session_tag"]


def session_tag(session_id: str | None) -> str | None:
    """How audit names a session: a digest, since the id itself lets its holder use it."""
    if session_id is None:
        return None
    return "s:" + hashlib.sha256(session_id.encode()).hexdigest()[:16]


class GuardedConnection:
    def __init__(
        self,
        inner: ServerConnection,
        principal: Principal,
        handler: Handler,
        *,
        session_id: str | None = None,
        sessions: SubscribedSessions | None = None,
    ) -> None:
        self.inner = inner
        self.principal = principal
        # Its answers are this principal's: states it seals and calls it parks are bound to
        # it (AZ-1), and lists and reads, filtered and gated per principal, are private (AZ-2).
        inner.serve_as(principal.binding)
        self._handler = handler
        self._session = session_tag(session_id)
        self._sessions = sessions

    @property
    def session(self) -> str | None:
        """How audit names this connection's session (``session_tag``)."""
        return self._session

    async def __call__(self, call: Call) -> JSONValue:
        era = self.inner.era_of(call)
        modern = era is Era.MODERN
        spec = CLIENT_METHODS.get(call.method)
        target: Target | None = None
        malformed: ProtocolError | None = None
        if spec is None or era not in spec.eras:
            # Not a method of this era (or of MCP): -32601 from the protocol, as both
            # revisions require, rather than a policy answer about something that is not there.
            # Refused by the authorize stage, so the probe is audited and rate-limited (AD-1).
            malformed = MethodNotFound(call.method)
        else:
            try:
                target = target_of(call.method, call.params)
            except InvalidParams as exc:  # refused by the authorize stage, so it is audited
                malformed = exc
        exchange = Exchange(
            principal=self.principal,
            call=call,
            serve=self.inner,
            target=target,
            subscriptions=subscriptions_of(call.method, call.params),
            malformed=malformed,
            session=self._session,
            client_capabilities=self._capabilities(call, modern),
            modern=modern,
        )
        return await self._handler(exchange)

    def _capabilities(self, call: Call, modern: bool) -> JSONObject:
        if not modern:
            return self.inner.client_capabilities
        # Only the capabilities: the MCP layer reads (and refuses a malformed) _meta itself.
        meta = call.params.get("_meta")
        caps = meta.get(META_CLIENT_CAPABILITIES) if isinstance(meta, dict) else None
        return caps if isinstance(caps, dict) else {}

    async def on_notification(self, note: Notification) -> None:
        await self.inner.on_notification(note)

    def attach(self, peer: Peer) -> None:
        self.inner.attach(peer)
        if self._sessions is not None:
            self._sessions.add(self)

    def detach(self) -> None:
        if self._sessions is not None:
            self._sessions.discard(self)
        self.inner.detach()

    def adopt_initialize(self, version: str, client_capabilities: JSONObject) -> None:
        self.inner.adopt_initialize(version, client_capabilities)
