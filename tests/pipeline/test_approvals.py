"""The approval gate's table is shared by every principal (TC-6, DS-3): one principal's
flood of approval-requiring calls costs only its own entries, never another's, and never
an approved call waiting for its retry before the same principal's pending ones."""

from __future__ import annotations

from contextlib import AsyncExitStack

import pytest

from bastion.client import ClientSession
from bastion.errors import PeerError
from bastion.pipeline import ApprovalGate, AuthorizeStage
from bastion.pipeline.approvals import MAX_PENDING_PER_PRINCIPAL
from bastion.protocol.versions import Era
from tests.pipeline.support import app_with_tools, guarded, policy, principal

pytestmark = pytest.mark.anyio

POLICY = """
version: 1
roles:
  dev: {}
rules:
  - id: handshake
    effect: allow
    roles: [dev]
    methods: [initialize, ping, "notifications/*", tools/list, server/discover]
  - id: dev-deploy
    effect: allow
    roles: [dev]
    tools: [ops__deploy]
security:
  tools:
    ops__deploy: {level: high, approval: admin}
"""
NAMES = ("alice", "bob", "carol")


async def ask(client: ClientSession, n: int) -> str:
    """Call ``ops__deploy`` with argument ``n``; the approval id it is refused with."""
    with pytest.raises(PeerError) as refused:
        await client.call_tool("ops__deploy", {"n": n})
    assert refused.value.peer_message == "Approval required"
    approval_id = refused.value.peer_data["approvalId"]
    assert isinstance(approval_id, str)
    return approval_id


async def clients(
    stack: AsyncExitStack, gate: ApprovalGate, calls: list[str]
) -> dict[str, ClientSession]:
    rules = policy(POLICY)
    app = app_with_tools("ops__deploy", calls=calls)
    stages = [AuthorizeStage(lambda: rules, gate)]
    return {
        name: await stack.enter_async_context(
            guarded(app, stages, principal(name, "dev"), Era.MODERN)
        )
        for name in NAMES
    }


async def test_tc6_ds3_a_full_table_never_evicts_another_principals_approved_call() -> None:
    """DS-3: bob's call was approved; carol then fills the table with calls of her own:
    only her entries give way, and bob's retry runs instead of getting a new approval id."""
    gate = ApprovalGate(max_pending=8)
    calls: list[str] = []
    async with AsyncExitStack() as stack:
        c = await clients(stack, gate, calls)
        bobs = await ask(c["bob"], 0)
        assert gate.decide(bobs, approve=True, by="admin:root") is not None
        carols = [await ask(c["carol"], n) for n in range(20)]
        assert [p.id for p in gate.pending()] == carols[-7:]  # her newest seven
        await c["bob"].call_tool("ops__deploy", {"n": 0})
    assert calls == ["ops__deploy"]


async def test_tc6_ds3_each_principal_holds_at_most_its_share_of_pending_approvals() -> None:
    """DS-3: past ``MAX_PENDING_PER_PRINCIPAL`` a principal's own oldest pending call is
    forgotten (its newest ones stay listed for an admin); others' entries stay."""
    gate = ApprovalGate()
    async with AsyncExitStack() as stack:
        c = await clients(stack, gate, [])
        alices = await ask(c["alice"], 0)
        carols = [await ask(c["carol"], n) for n in range(MAX_PENDING_PER_PRINCIPAL + 10)]
        listed = [p.id for p in gate.pending()]
        assert listed == [alices, *carols[-MAX_PENDING_PER_PRINCIPAL:]]
        assert gate.get(carols[0]) is None
        assert await ask(c["carol"], 0) != carols[0]  # forgotten: asked for afresh


async def test_tc6_ds3_own_flood_evicts_own_pending_calls_before_an_approved_one() -> None:
    """DS-3: bob's approved call not yet retried outlives his own later flood of pending
    calls, and still runs once."""
    gate = ApprovalGate(max_pending=64, max_per_principal=4)
    calls: list[str] = []
    async with AsyncExitStack() as stack:
        c = await clients(stack, gate, calls)
        approved = await ask(c["bob"], 0)
        assert gate.decide(approved, approve=True, by="admin:root") is not None
        flood = [await ask(c["bob"], n) for n in range(1, 20)]
        assert [p.id for p in gate.pending()] == flood[-3:]  # four entries: three pending
        await c["bob"].call_tool("ops__deploy", {"n": 0})
    assert calls == ["ops__deploy"]


async def test_ds3_a_full_table_takes_from_the_principal_holding_most() -> None:
    """DS-3: when the whole table is full, the entry that goes belongs to the principal
    holding the most, never to one holding fewer, even when that one's entry is oldest."""
    gate = ApprovalGate(max_pending=6, max_per_principal=4)
    async with AsyncExitStack() as stack:
        c = await clients(stack, gate, [])
        bobs = await ask(c["bob"], 0)  # the oldest entry of all
        alices = [await ask(c["alice"], n) for n in range(4)]
        carols = [await ask(c["carol"], n) for n in range(2)]  # the seventh entry
        assert [p.id for p in gate.pending()] == [bobs, *alices[1:], *carols]


async def test_ds3_a_share_of_one_keeps_the_newest_call_findable() -> None:
    """DS-3: with one entry per principal, each new call replaces the last, and asking again
    for the newest answers with its id (it is still the one remembered)."""
    gate = ApprovalGate(max_pending=4, max_per_principal=1)
    async with AsyncExitStack() as stack:
        c = await clients(stack, gate, [])
        first = await ask(c["alice"], 0)
        second = await ask(c["alice"], 1)
        assert await ask(c["alice"], 1) == second
        assert (gate.get(first), [p.id for p in gate.pending()]) == (None, [second])
