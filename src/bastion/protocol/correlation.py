"""Request/response correlation, cancellation and progress bookkeeping (sans-IO).

``Correlator`` owns the ids of requests *we* send: it hands out ids, remembers a waiter for
each (any object the caller chooses, such as an event), and returns it when the matching
response arrives. ``InflightTable`` tracks requests *we* are serving, so a
``notifications/cancelled`` can find the work to stop. Both tables are bounded: when full,
new entries are refused rather than memory growing.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final, Generic, TypeVar

from bastion.errors import BastionError, InvalidRequest
from bastion.protocol.jsonrpc import RequestId

__all__ = ["DEFAULT_MAX_INFLIGHT", "Correlator", "InflightTable", "TableFull"]

DEFAULT_MAX_INFLIGHT: Final = 1024  # per connection; far above what one client runs at once

W = TypeVar("W")


class TableFull(BastionError):
    code = -32000
    message = "Too many requests in flight"


class Correlator(Generic[W]):
    """Outgoing request ids and their waiters."""

    __slots__ = ("_next", "_pending", "_progress", "limit")

    def __init__(self, *, limit: int = DEFAULT_MAX_INFLIGHT) -> None:
        self.limit = limit
        self._next = 0
        self._pending: dict[RequestId, W] = {}
        self._progress: dict[int | str, RequestId] = {}

    def __len__(self) -> int:
        return len(self._pending)

    def register(self, waiter: W, *, progress_token: int | str | None = None) -> RequestId:
        """Allocate an id for a new outgoing request and remember its waiter.

        Raises:
            TableFull: ``limit`` requests are already waiting.
        """
        if len(self._pending) >= self.limit:
            raise TableFull("outgoing table full")
        self._next += 1
        request_id = self._next
        self._pending[request_id] = waiter
        if progress_token is not None:
            self._progress[progress_token] = request_id
        return request_id

    def pending(self, request_id: RequestId | None) -> W | None:
        """The waiter for ``request_id`` if it is still waiting (kept)."""
        return None if request_id is None else self._pending.get(request_id)

    def resolve(self, request_id: RequestId | None) -> W | None:
        """The waiter for a response's id (forgotten afterwards), or None if unknown."""
        if request_id is None:
            return None
        return self._pending.pop(request_id, None)

    def waiter_for_progress(self, token: int | str) -> W | None:
        request_id = self._progress.get(token)
        return None if request_id is None else self._pending.get(request_id)

    def forget(self, request_id: RequestId) -> None:
        self._pending.pop(request_id, None)
        for token in [k for k, v in self._progress.items() if v == request_id]:
            del self._progress[token]

    def waiters(self) -> Iterator[W]:
        return iter(list(self._pending.values()))


class InflightTable(Generic[W]):
    """Requests we are serving, keyed by the peer's id, with a handle to cancel each."""

    __slots__ = ("_entries", "limit")

    def __init__(self, *, limit: int = DEFAULT_MAX_INFLIGHT) -> None:
        self.limit = limit
        self._entries: dict[RequestId, W] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, request_id: object) -> bool:
        return request_id in self._entries

    def add(self, request_id: RequestId, handle: W) -> None:
        """Track a request.

        Raises:
            TableFull: ``limit`` requests are already running.
            InvalidRequest: the id is already in use by a running request.
        """
        if request_id in self._entries:
            raise InvalidRequest("duplicate request id")
        if len(self._entries) >= self.limit:
            raise TableFull("inbound table full")
        self._entries[request_id] = handle

    def pop(self, request_id: RequestId) -> W | None:
        return self._entries.pop(request_id, None)

    def get(self, request_id: RequestId) -> W | None:
        return self._entries.get(request_id)
