"""The lifecycle of the HTTP face's 2025-11-25 sessions: the ``SessionTable`` of live ones,
the ``ReplayBudget`` their streams share (DS-4), the ``gateway.sessions`` settings and the
clock. A session is found only by the principal and credential that opened it (SE-2), and
only while it is neither idle past ``idle_timeout`` nor older than ``max_lifetime``, nor its
owner's roles changed (SE-3); using it makes the credential presented its owner's. Sessions
end by lookup, by expiry, by DELETE, by a predicate on their owner or by a lapsed credential
(SE-3); ending one closes it, cancelling the requests it still serves.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from bastion._types import Clock
from bastion.auth.principal import Principal
from bastion.transport.base import McpConnection
from bastion.transport.http_replay import ReplayBudget
from bastion.transport.http_session_table import SessionTable
from bastion.transport.http_sessions import HttpSession
from bastion.transport.settings import SessionSettings

__all__ = ["MAX_SESSION_ID", "SessionRegistry"]

MAX_SESSION_ID: Final = 256


class SessionRegistry:
    """The live sessions of one app, and the rules by which they are found and end."""

    def __init__(self, settings: SessionSettings, clock: Clock) -> None:
        self.settings = settings
        self._clock = clock
        self._table = SessionTable(
            max_sessions=settings.max_sessions,
            max_per_principal=settings.max_sessions_per_principal,
        )
        self._replay = ReplayBudget(  # DS-4: what sessions keep for Last-Event-ID
            per_session=settings.replay_bytes,
            total=settings.replay_bytes_total,
            ttl=settings.replay_ttl,
            clock=clock,
        )

    def __len__(self) -> int:
        return len(self._table)

    def open(self, session_id: str, connection: McpConnection, principal: Principal) -> HttpSession:
        """A new session of ``principal``, not yet kept (``add`` keeps it once initialized)."""
        return HttpSession(session_id, connection, self._clock(), principal, self._replay)

    def add(self, session: HttpSession) -> None:
        self._table.add(session)  # may end others, fairly (DS-3): see SessionTable

    def lookup(self, session_id: str | None, principal: Principal) -> HttpSession | None:
        """The caller's session, or None: unknown, expired, or someone else's (SE-2, SE-3).
        A session whose owner's roles changed since it began is ended."""
        if session_id is None or len(session_id) > MAX_SESSION_ID:
            return None
        self.expire()
        session = self._table.get(session_id)
        if session is None or session.principal.binding != principal.binding:
            return None
        now = self._clock()
        if (
            session.principal.roles != principal.roles
            or now - session.created > self.settings.max_lifetime
        ):
            self.end(session)
            return None
        session.last_seen = now
        # The credential presented now is the owner's freshest (a refreshed JWT, same subject
        # and roles): its expiry and claims are the ones the session lives by (SE-3).
        session.principal = principal
        self._table.move_to_end(session_id)
        return session

    def held_by_another(self, session_id: str, principal: Principal) -> bool:
        """Whether ``session_id`` names a live session of someone other than this caller
        (their refusal is audited, AD-1; they are answered as for an unknown id, SE-2).
        Touches nothing."""
        session = self._table.get(session_id)
        return session is not None and session.principal.binding != principal.binding

    def owns(self, session_id: str | None, principal: Principal) -> bool:
        """Whether ``session_id`` names a live session of this caller; someone else's is
        not told apart from an unknown one (SE-2). Touches nothing."""
        session = self._table.get(session_id) if session_id is not None else None
        return session is not None and session.principal.binding == principal.binding

    def expire(self) -> None:
        """End the sessions idle past ``idle_timeout``, and drop stale replay (DS-4)."""
        self._replay.expire()
        now = self._clock()
        while self._table:
            sid, oldest = next(iter(self._table.items()))
            if now - oldest.last_seen < self.settings.idle_timeout:
                return
            del self._table[sid]
            oldest.close()

    def end(self, session: HttpSession) -> None:
        self._table.pop(session.id, None)
        session.close()

    def expire_replay(self) -> None:
        """Drop the replay of streams finished more than ``replay_ttl`` ago (DS-4)."""
        self._replay.expire()

    def end_where(self, ended: Callable[[Principal], bool]) -> int:
        """End every session whose owner ``ended`` says is no longer valid (SE-3), open
        streams included; returns how many ended."""
        doomed = [s for s in self._table.values() if ended(s.principal)]
        for session in doomed:
            self.end(session)
        return len(doomed)

    def end_of(self, credential_id: str) -> None:
        """End every session opened with ``credential_id`` (it lapsed: SE-3)."""
        for session in [
            s for s in self._table.values() if s.principal.credential_id == credential_id
        ]:
            self.end(session)

    def close_all(self) -> None:
        for session in self._table.values():
            session.close()
        self._table.clear()
