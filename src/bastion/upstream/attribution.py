"""Which client call an upstream's messages belong to, so they reach that client and no other.

``InFlight`` is one replica's table of calls in flight and of the upstream request ids sent
for each. An upstream request (sampling, elicitation, roots) or log line is attributed by
the HTTP stream it came on; from a stdio upstream, only when one call is in flight. Once a
call is abandoned, nothing unattributed is attributed until the upstream restarts.
``forwarder``, ``progress_to`` and ``relay_log`` relay requests, progress and log lines to
the call they belong to.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING

from bastion._types import JSONObject, JSONValue
from bastion.errors import MethodNotFound
from bastion.protocol import types as t
from bastion.protocol.jsonrpc import RequestId
from bastion.server.context import LOG_LEVELS
from bastion.transport.base import RELATED_REQUEST
from bastion.upstream.parking import ParkedCall

if TYPE_CHECKING:
    from bastion.server.context import ToolContext

__all__ = ["InFlight", "forwarder", "progress_to", "relay_log"]

logger = logging.getLogger(__name__)


class InFlight:
    """The calls in flight to one upstream replica, and the request ids sent for each."""

    def __init__(self, label: str) -> None:
        self._label = label
        self._callers: dict[int, ToolContext | ParkedCall] = {}
        # Upstream request id -> the call it was sent for (HTTP streams relate messages).
        self._sent_for: dict[RequestId, ToolContext | ParkedCall] = {}
        self._ids = itertools.count(1)
        self.attribution_off = False  # see abandoned

    def __len__(self) -> int:
        return len(self._callers)

    @contextlib.contextmanager
    def track(self, caller: ToolContext | ParkedCall) -> Iterator[Callable[[RequestId], None]]:
        """``caller`` is among the calls in flight until the block ends; the callback it
        yields (``on_sent``) records each upstream request id sent for it."""
        key = next(self._ids)
        self._callers[key] = caller
        sent: list[RequestId] = []

        def on_sent(request_id: RequestId) -> None:
            sent.append(request_id)
            self._sent_for[request_id] = caller

        try:
            yield on_sent
        finally:
            del self._callers[key]
            for request_id in sent:
                self._sent_for.pop(request_id, None)

    def sole_caller(self) -> ToolContext | ParkedCall | None:
        """The call an upstream's log line or server request belongs to, if it is known.

        Over HTTP the message came on one call's POST stream, which says whose it is (a
        call that already ended gets nothing). A stdio upstream does not say; with one call
        in flight it can only be that one, otherwise nobody gets it.
        """
        related = RELATED_REQUEST.get()
        if related is not None:
            return self._sent_for.get(related)
        if self.attribution_off or len(self._callers) != 1:
            return None
        return next(iter(self._callers.values()))

    def abandoned(self) -> None:
        # A call we stopped waiting for may go on talking: from now on, an unattributed log
        # line or request could be its, so none is attributed until the upstream restarts.
        if not self.attribution_off:
            logger.info(
                "upstream %s: a call was abandoned; unattributed messages are now "
                "dropped until it restarts",
                self._label,
            )
        self.attribution_off = True


def forwarder(
    calls: InFlight, method: str, label: str
) -> Callable[[JSONObject], Awaitable[JSONObject]]:
    """A handler for the upstream's ``method`` requests: asks the client of the call it
    belongs to, and refuses (-32601) one that cannot be attributed."""

    async def forward(params: JSONObject) -> JSONObject:
        ctx = calls.sole_caller()
        if ctx is None:
            raise MethodNotFound(f"{method} from {label} cannot be attributed")
        if isinstance(ctx, ParkedCall):
            return await ctx.ask(method, params)
        answers = await ctx.ask({"request": t.InputRequest(method=method, params=params)})
        answer: JSONValue = answers["request"]
        return answer if isinstance(answer, dict) else {}

    return forward


def progress_to(
    target: Callable[[], ToolContext | None],
) -> Callable[[JSONObject], Awaitable[None]]:
    """Relay upstream progress to whichever client request ``target`` names now."""

    async def relay(note: JSONObject) -> None:
        ctx = target()
        progress = _num(note.get("progress"))
        if ctx is not None and progress is not None:
            await ctx.progress(progress, _num(note.get("total")), _str(note.get("message")))

    return relay


async def relay_log(calls: InFlight, params: JSONObject) -> None:
    """Relay an upstream's log line (``notifications/message`` params) to the call it
    belongs to (``sole_caller``; a parked call's current request), if any."""
    ctx = calls.sole_caller()
    target = ctx.current if isinstance(ctx, ParkedCall) else ctx
    level = params.get("level")
    if target is not None and isinstance(level, str) and level in LOG_LEVELS:
        name = params.get("logger")
        source = name if isinstance(name, str) else None
        await target.log(level, params.get("data"), source)  # type: ignore[arg-type]


def _num(value: JSONValue) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _str(value: JSONValue) -> str | None:
    return value if isinstance(value, str) else None
