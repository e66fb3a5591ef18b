"""Whose runs a principal sees and how many it may hold, behind a gateway that passes
principals (``trust_principal``), against real bubblewrap.

AZ-1 / VT-3: another principal's run is neither listed nor cancellable, and its id is
answered exactly like an unknown one. DS-3: one principal cannot take all of a workspace's
run slots, nor all of the server's; the server bounds how many commands run at once.

The clients send ``_meta`` themselves, standing in for the gateway, as in test_invocation.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from anyio.abc import TaskGroup

from bastion.client import ClientSession
from bastion.sandbox import Sandbox
from bastion.workspace import WorkspaceServer
from bastion.workspace.policy import parse_policy
from bastion.workspace.runs import FINISHED_KEPT
from tests.workspace.support import WAIT, make_root
from tests.workspace.test_invocation import call, gateway_link

pytestmark = pytest.mark.anyio

RULES = 'default: {roles: {default: {allow: [["true"], [sleep, "*"]]}}}\n'
UNKNOWN_ID = "0123456789abcdef"  # the form of a real execution id


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    assert shutil.which("bwrap"), "bwrap is missing: run scripts/bootstrap"
    with Sandbox("bubblewrap") as box:
        yield box


def trusting(sandbox: Sandbox, policy: str, *workspaces: str) -> Iterator[WorkspaceServer]:
    base = make_root()
    rules = parse_policy(policy, source="test-policy")
    server = WorkspaceServer(base / "root", sandbox=sandbox, policy=rules, trust_principal=True)
    for name in workspaces:
        server.root.create(name)
    try:
        yield server
    finally:
        server.close()
        shutil.rmtree(base, ignore_errors=True)


async def running(link: ClientSession, who: str, workspace: str, count: int) -> list[Any]:
    """``who``'s running commands in ``workspace``, once there are ``count`` of them."""
    with anyio.fail_after(WAIT):
        while True:
            failed, listed, why = await call(link, who, "list_executions", workspace=workspace)
            assert not failed, why
            if len(listed["running"]) >= count:
                return list(listed["running"])
            await anyio.sleep(0.05)


def sleeper(
    tg: TaskGroup, link: ClientSession, who: str | None, workspace: str
) -> list[tuple[bool, dict[str, Any], str]]:
    """Start ``sleep 20`` as ``who``; the list gets the answer (at once if refused)."""
    answers: list[tuple[bool, dict[str, Any], str]] = []

    async def run() -> None:
        answers.append(
            await call(link, who, "run_command", workspace=workspace, argv=["sleep", "20"])
        )

    tg.start_soon(run)
    return answers


async def settle(answers: list[list[tuple[bool, dict[str, Any], str]]], count: int) -> None:
    """Wait until ``count`` of the calls have answered."""
    with anyio.fail_after(WAIT):
        while sum(len(a) for a in answers) < count:
            await anyio.sleep(0.05)


@pytest.fixture
def one(sandbox: Sandbox) -> Iterator[WorkspaceServer]:
    yield from trusting(sandbox, RULES, "demo")


async def test_another_principals_runs_are_not_listed_or_cancellable_AZ1_VT3(
    one: WorkspaceServer,
) -> None:
    async with gateway_link(one) as link:
        failed, _, why = await call(link, "alice", "run_command", workspace="demo", argv=["true"])
        assert not failed, why
        _, joined, _ = await call(link, "alice", "join_workspace", workspace="demo", name="al")
        async with anyio.create_task_group() as tg:
            answers: list[tuple[bool, dict[str, Any], str]] = []

            async def alice_sleeps() -> None:
                answers.append(
                    await call(
                        link,
                        "alice",
                        "run_command",
                        workspace="demo",
                        argv=["sleep", "20"],
                        member_token=joined["member_token"],
                    )
                )

            tg.start_soon(alice_sleeps)
            [mine] = await running(link, "alice", "demo", 1)
            run_id = mine["execution_id"]
            failed, listed, shown = await call(link, "bob", "list_executions", workspace="demo")
            assert not failed and listed == {"running": [], "ended": []}
            assert shown == "No executions."
            failed, _, theirs = await call(
                link, "bob", "cancel_execution", workspace="demo", execution_id=run_id
            )
            _, _, unknown = await call(
                link, "bob", "cancel_execution", workspace="demo", execution_id=UNKNOWN_ID
            )
            assert failed and theirs.startswith("not_found:"), theirs
            assert theirs.replace(run_id, "ID") == unknown.replace(UNKNOWN_ID, "ID")
            assert [r["execution_id"] for r in await running(link, "alice", "demo", 1)] == [run_id]
            failed, _, why = await call(
                link, "alice", "cancel_execution", workspace="demo", execution_id=run_id
            )
            assert not failed, why
        assert answers[0][1]["limit"] == "cancelled"
        # Ended, it stays alice's: bob gets the unknown-id answer, not "already ended".
        _, _, theirs = await call(
            link, "bob", "cancel_execution", workspace="demo", execution_id=run_id
        )
        assert theirs.replace(run_id, "ID") == unknown.replace(UNKNOWN_ID, "ID")
        _, listed, _ = await call(link, "bob", "list_executions", workspace="demo")
        assert listed == {"running": [], "ended": []}
        _, listed, _ = await call(link, "alice", "list_executions", workspace="demo")
        assert [r["state"] for r in listed["ended"]] == ["exited", "cancelled"]


async def test_another_principals_runs_never_push_ones_history_out_AZ1_DS4(
    sandbox: Sandbox,
) -> None:
    """The history of ended runs is kept per principal: bob ending more runs than the
    history holds (FINISHED_KEPT) does not push alice's run out of her list, and bob's own
    list keeps his last FINISHED_KEPT."""
    fast = "rate: {per_minute: 600000, burst: 1000}\n" + RULES
    for server in trusting(sandbox, fast, "demo"):
        async with gateway_link(server) as link:
            failed, _, why = await call(
                link, "alice", "run_command", workspace="demo", argv=["true"]
            )
            assert not failed, why
            for _ in range(FINISHED_KEPT + 3):
                failed, _, why = await call(
                    link, "bob", "run_command", workspace="demo", argv=["true"]
                )
                assert not failed, why
            _, alices, _ = await call(link, "alice", "list_executions", workspace="demo")
            _, bobs, _ = await call(link, "bob", "list_executions", workspace="demo")
        assert [r["state"] for r in alices["ended"]] == ["exited"]
        assert len(bobs["ended"]) == FINISHED_KEPT
        assert {r["agent"]["principal"] for r in bobs["ended"]} == {"bob"}


async def test_one_principal_holds_at_most_half_of_a_workspaces_run_slots_DS3(
    one: WorkspaceServer,
) -> None:
    """The red team's squat: bob starts four sleeps in alice's workspace at once."""
    async with gateway_link(one) as link, anyio.create_task_group() as tg:
        bobs = [sleeper(tg, link, "bob", "demo") for _ in range(4)]
        await settle(bobs, 2)
        refusals = sorted(why for answers in bobs for failed, _, why in answers if failed)
        assert (
            refusals
            == [
                "too_large: you already run 2 of the 4 commands demo may run at once; "
                "wait for one to end or cancel_execution"
            ]
            * 2
        )
        assert len(await running(link, "bob", "demo", 2)) == 2
        failed, _, why = await call(link, "alice", "run_command", workspace="demo", argv=["true"])
        assert not failed, why
        # Two more principals fill the workspace; its own limit still holds.
        carols = [sleeper(tg, link, "carol", "demo") for _ in range(2)]
        await running(link, "carol", "demo", 2)
        failed, _, why = await call(link, "dave", "run_command", workspace="demo", argv=["true"])
        assert failed and why == (
            "too_large: 4 commands already run in demo; wait for one to end or cancel_execution"
        )
        assert all(not answers for answers in carols)
        tg.cancel_scope.cancel()


SERVER_CAPPED = "max_running_total: 4\n" + RULES


@pytest.fixture
def capped(sandbox: Sandbox) -> Iterator[WorkspaceServer]:
    yield from trusting(sandbox, SERVER_CAPPED, "w1", "w2", "w3", "w4")


async def test_the_server_caps_running_commands_and_each_principals_share_DS3(
    capped: WorkspaceServer,
) -> None:
    async with gateway_link(capped) as link, anyio.create_task_group() as tg:
        sleeper(tg, link, "alice", "w1")
        await running(link, "alice", "w1", 1)
        # A quarter of the server's 4 per principal, however many workspaces it has.
        failed, _, why = await call(link, "alice", "run_command", workspace="w2", argv=["true"])
        assert failed and why == (
            "too_large: you already run 1 of the 4 commands this server may run at once; "
            "wait for one to end or cancel_execution"
        )
        for who, workspace in (("bob", "w2"), ("carol", "w3"), ("dave", "w4")):
            sleeper(tg, link, who, workspace)
            await running(link, who, workspace, 1)
        full = "too_large: the server already runs 4 commands, its limit; try again when one ends"
        nobody: list[str | None] = ["erin", None]  # a principal with nothing running, and none
        for caller in nobody:
            failed, _, why = await call(link, caller, "run_command", workspace="w1", argv=["true"])
            assert failed and why == full, why
        tg.cancel_scope.cancel()
