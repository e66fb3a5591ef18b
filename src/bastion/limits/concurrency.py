"""``ConcurrencyLimiter`` (DS-2): at most ``max_concurrent`` calls in flight per principal
for each group of expensive tools, refused at once rather than queued.

``async with limiter.slot(principal, tool):`` takes a slot for the call's duration or raises
``LimitExceeded`` straight away: a queue of waiting calls would be unbounded memory and
unbounded latency, and the caller can retry after ``retry_after`` seconds. Counts live only
while calls are in flight (a key whose count drops to zero is deleted), and at most
``max_tracked`` keys are held: past that, a call that would add a new key is refused
(``scope="concurrency"``). That can only happen with ``max_tracked`` distinct (principal,
group) pairs in flight at once; evicting instead would forget live counts and break the cap.
"""

from __future__ import annotations

from typing import Final

from bastion.limits._match import FirstMatch
from bastion.limits.rate import LimitScope
from bastion.limits.settings import LimitSettings

__all__ = ["CONCURRENCY_RETRY_AFTER", "ConcurrencyLimiter", "LimitExceeded", "Slot"]

# A slot frees when some call ends, which nobody can predict: ask for the shortest wait.
CONCURRENCY_RETRY_AFTER: Final = 1


class LimitExceeded(Exception):
    """A limit refused the call: the transport answers 429 with ``Retry-After`` (or a
    JSON-RPC error inside an open stream). The message is client-safe."""

    def __init__(self, scope: LimitScope, retry_after: int) -> None:
        super().__init__(f"rate limited ({scope}); retry after {retry_after} s")
        self.scope = scope
        self.retry_after = retry_after


class ConcurrencyLimiter:
    """In-flight caps from the ``tools`` entries of ``LimitSettings`` with ``max_concurrent``."""

    def __init__(
        self, settings: LimitSettings | None = None, *, retry_after: int = CONCURRENCY_RETRY_AFTER
    ) -> None:
        settings = settings or LimitSettings()
        if retry_after < 1:
            raise ValueError("retry_after must be >= 1")
        self._caps = FirstMatch(
            [(t.match, t.max_concurrent) for t in settings.tools if t.max_concurrent is not None]
        )
        self._max = settings.max_tracked
        self._retry_after = retry_after
        self._in_flight: dict[tuple[str, int], int] = {}

    @property
    def tracked(self) -> int:
        """Keys with calls in flight now (never more than ``max_tracked``)."""
        return len(self._in_flight)

    def in_flight(self, principal: str, tool: str) -> int:
        """Calls in flight in ``tool``'s group for ``principal`` (0 when uncapped)."""
        found = self._caps(tool) if self._caps else None
        return 0 if found is None else self._in_flight.get((principal, found[0]), 0)

    def slot(self, principal: str, tool: str) -> Slot:
        """A slot for one call of ``tool`` by ``principal``, as an async context manager.

        Raises (on entry):
            LimitExceeded: the group's cap for this principal is reached.
        """
        found = self._caps(tool) if self._caps else None
        if found is None:
            return Slot(self, None, None)
        return Slot(self, (principal, found[0]), found[1])

    def _acquire(self, key: tuple[str, int], cap: int) -> None:
        count = self._in_flight.get(key, 0)
        if count >= cap or (count == 0 and len(self._in_flight) >= self._max):
            raise LimitExceeded("concurrency", self._retry_after)
        self._in_flight[key] = count + 1

    def _release(self, key: tuple[str, int]) -> None:
        count = self._in_flight[key] - 1
        if count:
            self._in_flight[key] = count
        else:
            del self._in_flight[key]


class Slot:
    """One call's hold on a concurrency slot; a no-op for tools without a cap.

    Entering and leaving never await, so on one event loop the count cannot race; leaving
    always releases, also on cancellation and errors.
    """

    __slots__ = ("_cap", "_held", "_key", "_owner")

    def __init__(
        self, owner: ConcurrencyLimiter, key: tuple[str, int] | None, cap: int | None
    ) -> None:
        self._owner = owner
        self._key = key
        self._cap = cap
        self._held = False

    async def __aenter__(self) -> None:
        if self._held:
            raise RuntimeError("a Slot is entered once")
        if self._key is not None and self._cap is not None:
            self._owner._acquire(self._key, self._cap)
        self._held = True

    async def __aexit__(self, *exc_info: object) -> None:
        if self._held and self._key is not None:
            self._owner._release(self._key)
        self._key = None
