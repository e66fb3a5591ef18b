"""Parked upstream calls: how a 2025-11-25 upstream's mid-call questions reach a 2026-07-28
client, which can only answer them by retrying its request.

The upstream call keeps running in the background, held here; each question it asks
(sampling, elicitation, roots) becomes an input request in the input-required result the
client gets, with the parked call's id sealed in the ``requestState``; a question the caller
may not be asked (``ToolContext.screen_input``) is refused to the upstream instead. The
retry delivers the answers to the waiting upstream call and waits for its next question or
its result. A parked call belongs to the caller that started it (``Principal.binding``):
anyone else's retry finds nothing, exactly as for an unknown call. The lot is bounded and
parked calls expire, cancelling the upstream call. Each parked call holds an upstream
request open (on HTTP, one of the replica's pooled connections), so one caller may hold at
most ``MAX_PARKED_PER_CALLER`` of them (past it, its own oldest is dropped), a full lot
drops the oldest call of the caller holding the most (DS-3), and the lot is a quarter of the
HTTP connection pool, so parked calls never starve the calls that do not wait. A parked call
has at most ``MAX_OPEN_QUESTIONS`` questions open at once (the upstream's further ones are
refused, -32600); a call dropped or given up answers its open and later questions with an
error (the replica gives up a call past ``MAX_INPUT_ROUNDS`` rounds, as it would a
2026-07-28 upstream's).
"""

from __future__ import annotations

import itertools
import logging
import secrets
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Final

import anyio

from bastion._types import Clock, JSONObject, JSONValue
from bastion.errors import BastionError, InvalidParams, InvalidRequest
from bastion.protocol import types as t

if TYPE_CHECKING:
    from bastion.server.context import ToolContext

__all__ = [
    "MAX_OPEN_QUESTIONS",
    "MAX_PARKED",
    "MAX_PARKED_PER_CALLER",
    "PARK_TTL",
    "PENDING_KEY",
    "Owner",
    "ParkedCall",
    "ParkingLot",
]

logger = logging.getLogger(__name__)

PENDING_KEY: Final = "io.bastion/pending"  # the sealed-state key naming a parked call
MAX_PARKED: Final = 32  # parked calls per upstream replica (its HTTP pool holds 128)
MAX_PARKED_PER_CALLER: Final = 8
PARK_TTL: Final = 600.0  # seconds a parked call waits for the client's retry
MAX_OPEN_QUESTIONS: Final = 16  # an upstream's questions waiting for the client, per call


Owner = tuple[str, str] | None  # the caller's binding; None on a connection that has none


class ParkedCall:
    def __init__(
        self, call_id: str, expires_at: float, owner: Owner = None, request: bytes = b""
    ) -> None:
        self.id = call_id
        self.expires_at = expires_at
        self.owner = owner
        self.request = request  # what was asked (encoded): a retry must ask the very same
        self.done = False
        self.result: JSONObject | None = None
        self.error: BaseException | None = None
        self.scope = anyio.CancelScope()
        self.current: ToolContext | None = None  # the client request of the current round
        self.rounds = 0  # input-required results the client got for this call
        self._refusal: BastionError | None = None
        self._questions: dict[str, tuple[t.InputRequest, anyio.Event]] = {}
        self._answers: dict[str, JSONValue] = {}
        self._refused: dict[str, BastionError] = {}  # questions refused one by one
        self._seq = itertools.count(1)
        self._news = anyio.Event()

    async def run(self, call: Callable[[], Awaitable[JSONObject]]) -> None:
        with self.scope:
            try:
                self.result = await call()
            except Exception as exc:  # handed to whoever waits for the result
                self.error = exc
        self.done = True
        self._news.set()

    async def ask(self, method: str, params: JSONObject) -> JSONObject:
        """Called by the upstream (through the replica): wait for the client's answer.

        Raises:
            InvalidRequest: ``MAX_OPEN_QUESTIONS`` questions are already open.
            BastionError: the call was refused (``refuse``), before or while waiting.
        """
        if self._refusal is not None:
            raise self._refusal
        if len(self._questions) >= MAX_OPEN_QUESTIONS:
            raise InvalidRequest(f"more than {MAX_OPEN_QUESTIONS} questions open at once")
        key = f"q{next(self._seq)}"
        answered = anyio.Event()
        self._questions[key] = (t.InputRequest(method=method, params=params), answered)
        self._news.set()
        await answered.wait()
        if key in self._refused:
            raise self._refused.pop(key)
        if key not in self._answers:
            raise self._refusal or InvalidRequest("question withdrawn")
        answer = self._answers.pop(key)
        return answer if isinstance(answer, dict) else {}

    def refuse(self, error: BastionError) -> None:
        """Answer the open questions, and any asked later, with ``error``."""
        self._refusal = error
        for _request, answered in self._questions.values():
            answered.set()
        self._questions.clear()

    def screen(self, screen_input: Callable[[str], None]) -> bool:
        """Refuse the open questions whose method ``screen_input`` raises for (the caller
        may not be asked them): the upstream gets that error, as in a 2025-11-25 session,
        and the call goes on. Whether any question is left for the client."""
        for key, (request, answered) in list(self._questions.items()):
            try:
                screen_input(request.method)
            except BastionError as refusal:
                del self._questions[key]
                self._refused[key] = refusal
                answered.set()
        return bool(self._questions)

    def deliver(self, responses: JSONObject) -> None:
        for key, (_request, answered) in list(self._questions.items()):
            if key in responses:
                self._answers[key] = responses[key]
                del self._questions[key]
                answered.set()

    def open_questions(self) -> dict[str, t.InputRequest]:
        return {key: request for key, (request, _) in self._questions.items()}

    async def news(self) -> None:
        """Wait until the call finished or has a question the client has not seen answered."""
        while not self.done and not self._questions:
            self._news = anyio.Event()
            await self._news.wait()


class ParkingLot:
    def __init__(
        self,
        *,
        limit: int = MAX_PARKED,
        per_caller: int = MAX_PARKED_PER_CALLER,
        clock: Clock = time.monotonic,
    ) -> None:
        self._limit = limit
        self._per_caller = per_caller
        self._clock = clock
        self._calls: dict[str, ParkedCall] = {}  # oldest first

    def __len__(self) -> int:
        return len(self._calls)

    def __contains__(self, call_id: object) -> bool:
        return call_id in self._calls

    def park(self, owner: Owner = None, request: bytes = b"") -> ParkedCall:
        """A new parked call, belonging to ``owner``; makes room as the module docstring
        says (the dropped call's upstream request is cancelled, its retry told to start
        over)."""
        self.expire()
        mine = [call for call in self._calls.values() if call.owner == owner]
        if len(mine) >= self._per_caller:
            self._drop(mine[0], "its caller's share is full")
        elif len(self._calls) >= self._limit:
            richest, most = Counter(call.owner for call in self._calls.values()).most_common(1)[0]
            victim = owner if mine and len(mine) >= most else richest
            oldest = next(call for call in self._calls.values() if call.owner == victim)
            self._drop(oldest, "the lot is full")
        call = ParkedCall(secrets.token_urlsafe(16), self._clock() + PARK_TTL, owner, request)
        self._calls[call.id] = call
        return call

    def find(self, call_id: str, owner: Owner = None, request: bytes = b"") -> ParkedCall:
        """Raises InvalidParams when the call is unknown, finished, expired, another
        caller's or was asked with other arguments than ``request`` (the same answer for
        all, so a stranger learns nothing)."""
        self.expire()
        call = self._calls.get(call_id)
        if call is None or call.owner != owner or call.request != request:
            raise InvalidParams(
                "no such parked call", message="Input round expired; retry the call"
            )
        return call

    def release(self, call: ParkedCall) -> None:
        self._calls.pop(call.id, None)

    def drop_where(self, lapsed: Callable[[Owner], bool]) -> int:
        """Drop the parked calls whose owner ``lapsed`` (a revoked key: AU-5); how many."""
        doomed = [call for call in self._calls.values() if lapsed(call.owner)]
        for call in doomed:
            self._drop(call, "its credential lapsed")
        return len(doomed)

    def _drop(self, call: ParkedCall, why: str) -> None:
        logger.info("dropped a parked call: %s", why)
        if not call.done:
            call.error = InvalidParams(
                f"parked call dropped: {why}", message="Input round expired; retry the call"
            )
        call.refuse(InvalidRequest(f"parked call dropped: {why}"))
        call.scope.cancel()
        del self._calls[call.id]

    def expire(self) -> None:
        now = self._clock()
        for call in [call for call in self._calls.values() if call.expires_at < now]:
            self._drop(call, "it waited too long")
