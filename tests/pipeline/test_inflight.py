"""``InFlightCalls`` (AU-5): a stateless call whose caller lapsed is ended with a fixed
-32003 answer and the reason in its audit detail; the others run on; the table holds only
the calls being served."""

from __future__ import annotations

from typing import cast

import anyio
import pytest

from bastion._types import JSONValue
from bastion.errors import Denied
from bastion.pipeline.exchange import Exchange
from bastion.pipeline.inflight import ENDED_MESSAGE, InFlightCalls
from bastion.session.peer import Call, RequestHandler
from tests.pipeline.support import principal

pytestmark = pytest.mark.anyio


def exchange(who: str) -> Exchange:
    return Exchange(
        principal=principal(who, "dev"),
        call=cast(Call, None),
        serve=cast(RequestHandler, None),
    )


async def test_au5_only_the_lapsed_callers_calls_end() -> None:
    calls = InFlightCalls()
    release = anyio.Event()
    outcomes: dict[str, object] = {}

    async def slow(ex: Exchange) -> JSONValue:
        await release.wait()
        return "done"

    async def run(ex: Exchange) -> None:
        try:
            outcomes[ex.principal.id] = await calls.hold(ex, slow)
        except Denied as exc:
            outcomes[ex.principal.id] = exc

    alice, bob = exchange("alice"), exchange("bob")
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(run, alice)
            tg.start_soon(run, bob)
            while len(calls) < 2:
                await anyio.sleep(0)
            assert calls.end_where(lambda p: p.id == "alice") == 1
            assert calls.end_where(lambda p: p.id == "alice") == 0  # ending once is enough
            while "alice" not in outcomes:
                await anyio.sleep(0)
            release.set()
    ended = outcomes["alice"]
    assert isinstance(ended, Denied) and ended.wire_message == ENDED_MESSAGE
    assert alice.detail == {"ended": "credential lapsed"}
    assert outcomes["bob"] == "done" and bob.detail == {}
    assert len(calls) == 0
