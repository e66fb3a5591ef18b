"""The table of 2025-11-25 sessions (SE-3, DS-3): bounded in all and per principal, and
one principal opening sessions in a loop never ends another's (the red-team finding: Bob's
1,030 ``initialize`` calls pushed Alice's session out of a 1,024-session table). In process,
through the ASGI app with the conformance fixture behind it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import pytest

from bastion.transport.settings import SessionSettings
from tests.transport.asgi_support import InProcess, in_process

pytestmark = pytest.mark.anyio

WAIT = 30  # seconds; every in-process exchange below finishes far sooner


@pytest.fixture
async def small() -> AsyncIterator[InProcess]:
    """A table of 8 sessions, at most 3 per principal."""
    async with in_process(max_sessions=8, max_sessions_per_principal=3) as gw:
        yield gw


async def test_ds3_se3_one_principal_cannot_push_out_anothers_session() -> None:
    """Bob opens sessions in a loop, far past the whole table (default bounds): Alice's
    session stays, and so do the newest of Bob's own, up to his cap."""
    with anyio.fail_after(WAIT):
        async with in_process() as gw:
            alice = await gw.initialize("alice")
            bobs = [await gw.initialize("bob") for _ in range(SessionSettings().max_sessions + 6)]
            assert await gw.alive("alice", alice)
            assert await gw.alive("bob", bobs[-1])
            assert not await gw.alive("bob", bobs[0])


async def test_ds3_over_its_cap_a_principal_ends_its_own_least_recently_used(
    small: InProcess,
) -> None:
    with anyio.fail_after(WAIT):
        first, second, third = [await small.initialize("bob") for _ in range(3)]
        assert await small.alive("bob", first)  # now second is Bob's least recently used
        fourth = await small.initialize("bob")
        assert [await small.alive("bob", s) for s in (first, third, fourth)] == [True] * 3
        assert not await small.alive("bob", second)


async def test_ds3_a_full_table_takes_from_the_principal_holding_the_most(
    small: InProcess,
) -> None:
    """8 sessions: Alice 1 (the least recently used of all), Bob 3, Carol 2, Dave 2. Erin's
    first takes Bob's oldest, not Alice's; Alice's second then takes the oldest of one of
    the three now holding 2, never her own first or Erin's."""
    with anyio.fail_after(WAIT):
        alice = await small.initialize("alice")
        bobs = [await small.initialize("bob") for _ in range(3)]
        carols = [await small.initialize("carol") for _ in range(2)]
        daves = [await small.initialize("dave") for _ in range(2)]
        erin = await small.initialize("erin")
        assert await small.alive("alice", alice)
        assert not await small.alive("bob", bobs[0])
        await small.initialize("alice")
        assert await small.alive("alice", alice)
        assert await small.alive("erin", erin)
        others = [("bob", bobs[1]), ("bob", bobs[2]), ("carol", carols[0]),
                  ("carol", carols[1]), ("dave", daves[0]), ("dave", daves[1])]  # fmt: skip
        kept = [await small.alive(who, s) for who, s in others]
        assert kept.count(False) == 1
        assert kept.index(False) in (0, 2, 4)  # someone's least recently used
