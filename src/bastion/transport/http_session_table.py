"""The table of live 2025-11-25 sessions, by id, least recently used first, bounded in all
(``max_sessions``) and per principal (``max_per_principal``) (SE-3, DS-3).

Adding a session over a bound ends another, chosen so that one principal opening sessions
never ends those of a principal holding fewer: at its cap, a principal gives up its own least
recently used session (rather than being refused: clients often drop a session without a
DELETE, and refusing them would lock them out for ``idle_timeout``); when the table is full,
the least recently used session of a principal holding the most goes, the newcomer's own if
it holds as many as anyone. Principals are counted by ``Principal.id``, whatever credential
they used. Ending a session closes it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Mapping

from bastion.transport.http_sessions import HttpSession

__all__ = ["SessionTable"]


class SessionTable(Mapping[str, HttpSession]):
    """Session id -> session, in least-recently-used order (``move_to_end`` on use)."""

    def __init__(self, *, max_sessions: int, max_per_principal: int) -> None:
        if max_sessions < 1 or max_per_principal < 1:
            raise ValueError("max_sessions and max_per_principal must be positive")
        self._max = max_sessions
        self._per_principal = max_per_principal
        self._all: OrderedDict[str, HttpSession] = OrderedDict()
        self._by_owner: dict[str, OrderedDict[str, HttpSession]] = {}
        # How many sessions -> the principals holding that many: finds the fullest in
        # O(distinct counts), at most sqrt(2 * max_sessions), not O(principals).
        self._holding: dict[int, dict[str, None]] = {}

    def __getitem__(self, session_id: str) -> HttpSession:
        return self._all[session_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._all)

    def __len__(self) -> int:
        return len(self._all)

    def add(self, session: HttpSession) -> None:
        """Keep ``session``, first ending (and closing) the sessions it displaces."""
        owner = session.principal.id
        while self._count(owner) >= self._per_principal:
            self._end_oldest_of(owner)
        while len(self._all) >= self._max:
            top = max(self._holding)
            fullest = owner if self._count(owner) >= top else next(iter(self._holding[top]))
            self._end_oldest_of(fullest)
        self._all[session.id] = session
        self._by_owner.setdefault(owner, OrderedDict())[session.id] = session
        self._recount(owner, +1)

    def move_to_end(self, session_id: str) -> None:
        """``session_id`` was just used: it becomes the most recently used."""
        session = self._all[session_id]
        self._all.move_to_end(session_id)
        self._by_owner[session.principal.id].move_to_end(session_id)

    def pop(self, session_id: str, default: HttpSession | None = None) -> HttpSession | None:
        """Forget ``session_id`` (without closing it); ``default`` if it is not here."""
        session = self._all.pop(session_id, None)
        if session is None:
            return default
        owner = session.principal.id
        mine = self._by_owner[owner]
        del mine[session_id]
        if not mine:
            del self._by_owner[owner]
        self._recount(owner, -1)
        return session

    def __delitem__(self, session_id: str) -> None:
        if self.pop(session_id) is None:
            raise KeyError(session_id)

    def clear(self) -> None:
        self._all.clear()
        self._by_owner.clear()
        self._holding.clear()

    def _count(self, owner: str) -> int:
        return len(self._by_owner.get(owner, ()))

    def _end_oldest_of(self, owner: str) -> None:
        oldest = next(iter(self._by_owner[owner]))
        session = self.pop(oldest)
        if session is not None:
            session.close()

    def _recount(self, owner: str, change: int) -> None:
        after = self._count(owner)
        before = after - change
        if before:
            bucket = self._holding[before]
            del bucket[owner]
            if not bucket:
                del self._holding[before]
        if after:
            self._holding.setdefault(after, {})[owner] = None
