"""Parked upstream calls (a 2025-11-25 upstream asking a 2026-07-28 client): a parked call
belongs to the caller that started it (AZ-1), and the lot is bounded."""

from __future__ import annotations

import pytest

from bastion.errors import InvalidParams, InvalidRequest
from bastion.upstream.parking import ParkingLot

pytestmark = pytest.mark.anyio  # a parked call holds a cancel scope and events

ALICE = ("alice", "apikey:a1")


def _refusal(lot: ParkingLot, call_id: str, owner: tuple[str, str] | None) -> str:
    with pytest.raises(InvalidParams) as refused:
        lot.find(call_id, owner)
    return refused.value.message


async def test_az1_a_parked_call_is_found_only_by_its_owner() -> None:
    lot = ParkingLot()
    parked = lot.park(ALICE)
    unknown = _refusal(lot, "no-such-call", ALICE)
    for stranger in (("bob", "apikey:b1"), ("alice", "apikey:a2"), None):
        assert _refusal(lot, parked.id, stranger) == unknown  # told apart from nothing
    assert lot.find(parked.id, ALICE) is parked


async def test_the_lot_is_bounded() -> None:
    lot = ParkingLot(limit=1)
    lot.park()
    with pytest.raises(InvalidRequest):
        lot.park()
