"""Parked upstream calls (a 2025-11-25 upstream asking a 2026-07-28 client): a parked call
belongs to the caller that started it (AZ-1), the lot is bounded, and so are a call's open
questions (DS-3)."""

from __future__ import annotations

import anyio
import pytest

from bastion.errors import BastionError, Denied, InvalidParams, InvalidRequest
from bastion.upstream.parking import MAX_OPEN_QUESTIONS, ParkingLot

pytestmark = pytest.mark.anyio  # a parked call holds a cancel scope and events

ALICE = ("alice", "apikey:a1")


def _refusal(lot: ParkingLot, call_id: str, owner: tuple[str, str] | None) -> str:
    with pytest.raises(InvalidParams) as refused:
        lot.find(call_id, owner)
    return refused.value.wire_message


async def test_az1_a_parked_call_is_found_only_by_its_owner() -> None:
    lot = ParkingLot()
    parked = lot.park(ALICE)
    unknown = _refusal(lot, "no-such-call", ALICE)
    for stranger in (("bob", "apikey:b1"), ("alice", "apikey:a2"), None):
        assert _refusal(lot, parked.id, stranger) == unknown  # told apart from nothing
    assert lot.find(parked.id, ALICE) is parked


async def test_the_lot_is_bounded() -> None:
    lot = ParkingLot(limit=1)
    first = lot.park()
    second = lot.park()
    assert len(lot) == 1 and lot.find(second.id) is second
    assert _refusal(lot, first.id, None) == _refusal(lot, "no-such-call", None)


BOB = ("bob", "apikey:b1")


async def test_ds3_one_caller_holds_at_most_its_share_and_loses_its_own_oldest() -> None:
    """Each parked call holds an upstream request (on HTTP a pooled connection): a caller
    past its share drops its own oldest call, whose retry is told to start over."""
    lot = ParkingLot(limit=10, per_caller=3)
    bobs = lot.park(BOB)
    alices = [lot.park(ALICE) for _ in range(5)]
    assert len(lot) == 4  # alice's 3 newest and bob's one
    assert lot.find(bobs.id, BOB) is bobs
    for dropped in alices[:2]:
        assert dropped.scope.cancel_called
        assert isinstance(dropped.error, InvalidParams)
        assert _refusal(lot, dropped.id, ALICE) == _refusal(lot, "no-such-call", ALICE)
    assert all(lot.find(call.id, ALICE) is call for call in alices[2:])


async def test_ds3_a_full_lot_takes_from_the_caller_holding_the_most() -> None:
    lot = ParkingLot(limit=4, per_caller=3)
    alices = [lot.park(ALICE) for _ in range(3)]
    bobs = lot.park(BOB)
    carols = lot.park(("carol", "apikey:c1"))  # full: alice, holding the most, gives way
    assert len(lot) == 4 and alices[0].scope.cancel_called
    assert lot.find(bobs.id, BOB) is bobs and lot.find(carols.id, ("carol", "apikey:c1"))
    again = lot.park(BOB)  # bob holds 1 and alice 2: alice gives way again
    assert alices[1].scope.cancel_called and lot.find(again.id, BOB) is again


async def test_au5_the_parked_calls_of_a_lapsed_key_are_dropped() -> None:
    lot = ParkingLot()
    alices, bobs = lot.park(ALICE), lot.park(BOB)
    assert lot.drop_where(lambda owner: owner == ALICE) == 1
    assert alices.scope.cancel_called and isinstance(alices.error, InvalidParams)
    assert lot.find(bobs.id, BOB) is bobs and len(lot) == 1


async def test_ds3_a_parked_call_has_at_most_max_open_questions_and_refusal_answers_them() -> None:
    """An upstream's questions past MAX_OPEN_QUESTIONS are refused at once (-32600); a
    refused call (given up, dropped) answers its open questions, and later ones, with the
    error, so the upstream is never left waiting."""
    call = ParkingLot().park()
    refused: list[BastionError] = []

    async def ask() -> None:
        try:
            await call.ask("elicitation/create", {"message": "?"})
        except BastionError as exc:
            refused.append(exc)

    async with anyio.create_task_group() as tg:
        for _ in range(MAX_OPEN_QUESTIONS + 3):
            tg.start_soon(ask)
        await anyio.wait_all_tasks_blocked()
        assert len(call.open_questions()) == MAX_OPEN_QUESTIONS
        assert [exc.code for exc in refused] == [-32600] * 3
        call.refuse(InvalidRequest("given up"))
    assert len(refused) == MAX_OPEN_QUESTIONS + 3 and not call.open_questions()
    with pytest.raises(InvalidRequest):
        await call.ask("roots/list", {})


async def test_az1_screening_refuses_the_questions_the_caller_may_not_be_asked() -> None:
    """The round's screen (the caller's policy) refuses a question to the upstream with its
    own error, and leaves the others for the client; the call is not given up."""
    call = ParkingLot().park(ALICE)
    outcomes: dict[str, object] = {}

    async def ask(method: str) -> None:
        try:
            outcomes[method] = await call.ask(method, {})
        except BastionError as exc:
            outcomes[method] = exc.code

    def no_roots(method: str) -> None:
        if method == "roots/list":
            raise Denied("roots are not the upstream's to ask")

    async with anyio.create_task_group() as tg:
        tg.start_soon(ask, "roots/list")
        tg.start_soon(ask, "elicitation/create")
        await anyio.wait_all_tasks_blocked()
        assert call.screen(no_roots)  # a question is left for the client
        await anyio.wait_all_tasks_blocked()
        assert outcomes == {"roots/list": -32003}
        ((key, request),) = call.open_questions().items()
        assert request.method == "elicitation/create"
        call.deliver({key: {"action": "decline"}})
    assert outcomes == {"roots/list": -32003, "elicitation/create": {"action": "decline"}}
    assert not call.screen(no_roots)  # nothing open: the client has nothing to answer


async def test_az1_a_retry_asking_something_else_finds_nothing() -> None:
    """The retry is authorized, and its questions screened, with its own arguments: it must
    ask what the parked call asks (red-team K), else it is told the round expired."""
    lot = ParkingLot()
    parked = lot.park(ALICE, b'["tools/call",{"arguments":{"path":"pub"},"name":"read"}]')
    other = b'["tools/call",{"arguments":{"path":"secret"},"name":"read"}]'
    with pytest.raises(InvalidParams) as refused:
        lot.find(parked.id, ALICE, other)
    assert refused.value.wire_message == _refusal(lot, "no-such-call", ALICE)
    assert lot.find(parked.id, ALICE, parked.request) is parked
