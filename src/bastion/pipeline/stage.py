"""What a pipeline stage is, and how the ordered list of stages becomes one handler.

A stage is an object with a ``name`` and ``__call__(exchange, proceed)``: it may refuse (raise),
look at or change the exchange, call ``proceed`` to run the stages after it, and look at or
change the result on the way back. ``compose`` nests the list once, at start-up, so a request
pays one call per stage and nothing to find them: each stage is bound to the handler after it
with ``functools.partial`` (a C call, no coroutine of its own).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Protocol

from bastion._types import JSONValue
from bastion.pipeline.exchange import Exchange

__all__ = ["Handler", "Stage", "compose", "route"]

Handler = Callable[[Exchange], Awaitable[JSONValue]]


class Stage(Protocol):
    name: str

    async def __call__(self, exchange: Exchange, proceed: Handler) -> JSONValue: ...


async def route(exchange: Exchange) -> JSONValue:
    """The innermost handler: the MCP layer answers (and proxies to the upstream)."""
    return await exchange.serve(exchange.call)


def compose(stages: Sequence[Stage], endpoint: Handler = route) -> Handler:
    """One handler running ``stages`` in order around ``endpoint``."""
    handler = endpoint
    for stage in reversed(stages):
        handler = partial(stage, proceed=handler)
    return handler
