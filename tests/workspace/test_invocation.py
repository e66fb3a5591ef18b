"""Who a call acts as (DS-3): behind a gateway that passes each request's principal in
``_meta`` (``io.bastion/principal``), a workspace started with ``trust_principal`` keys its
agent by that principal, so one principal's runs, changes, locks and member places are its
own; without ``trust_principal`` the key is ignored and every caller stays ``anonymous``.

The clients here send ``_meta`` themselves, standing in for the gateway (its own tests show
that a real client's key never reaches an upstream)."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

from bastion.client import ClientSession
from bastion.protocol.meta import META_PRINCIPAL
from bastion.protocol.versions import Era
from bastion.sandbox import Sandbox
from bastion.transport.base import serve_stream
from bastion.transport.memory import create_memory_pair
from bastion.workspace import WorkspaceLimits, WorkspaceServer
from bastion.workspace.policy import parse_policy
from tests.workspace.support import WAIT, make_root

pytestmark = pytest.mark.anyio

POLICY = 'rate: {per_minute: 1, burst: 2}\ndefault: {roles: {default: {allow: [["true"]]}}}\n'


@pytest.fixture
def trusting() -> Iterator[WorkspaceServer]:
    base = make_root()
    try:
        with Sandbox("bubblewrap") as box:
            rules = parse_policy(POLICY, source="test-policy")
            server = WorkspaceServer(base / "root", sandbox=box, policy=rules, trust_principal=True)
            server.root.create("demo")
            yield server
            server.close()
    finally:
        shutil.rmtree(base, ignore_errors=True)


@asynccontextmanager
async def gateway_link(server: WorkspaceServer) -> AsyncIterator[ClientSession]:
    """One upstream session, shared by every principal, as the gateway keeps it."""
    client_end, server_end = create_memory_pair()
    with anyio.fail_after(WAIT * 6):
        async with client_end, server_end, anyio.create_task_group() as tg:
            tg.start_soon(serve_stream, server_end, server.connection())
            async with ClientSession(client_end, era=Era.MODERN) as session:
                await session.connect()
                yield session
            tg.cancel_scope.cancel()


async def call(
    session: ClientSession, who: str | None, tool: str, **args: Any
) -> tuple[bool, dict[str, Any], str]:
    """(isError, structuredContent, text) of ``tool`` called on behalf of ``who``."""
    params: dict[str, Any] = {"name": tool, "arguments": args}
    if who is not None:
        params["_meta"] = {META_PRINCIPAL: who}
    result = await session.request("tools/call", params)
    return (
        bool(result.get("isError")),
        result.get("structuredContent") or {},
        str(result["content"][0]["text"]),
    )


async def test_one_principals_runs_do_not_throttle_another_DS3(
    trusting: WorkspaceServer,
) -> None:
    async with gateway_link(trusting) as link:
        for _ in range(2):
            failed, _, why = await call(
                link, "alice", "run_command", workspace="demo", argv=["true"]
            )
            assert not failed, why
        failed, _, why = await call(link, "alice", "run_command", workspace="demo", argv=["true"])
        assert failed and "rate limit" in why
        # Joining as a member does not give alice a fresh bucket either.
        _, joined, _ = await call(link, "alice", "join_workspace", workspace="demo", name="a2")
        failed, _, why = await call(
            link,
            "alice",
            "run_command",
            workspace="demo",
            argv=["true"],
            member_token=joined["member_token"],
        )
        assert failed and "rate limit" in why
        failed, _, why = await call(link, "carol", "run_command", workspace="demo", argv=["true"])
        assert not failed, why
        # Each principal lists its own runs only (AZ-1, see test_runs).
        _, listed, _ = await call(link, "carol", "list_executions", workspace="demo")
        assert [r["agent"]["name"] for r in listed["ended"]] == ["carol"]
        _, listed, _ = await call(link, "alice", "list_executions", workspace="demo")
        assert [r["agent"]["name"] for r in listed["ended"]] == ["alice", "alice"]


async def test_changes_and_locks_are_each_principals_own_DS3(
    trusting: WorkspaceServer,
) -> None:
    async with gateway_link(trusting) as link:
        for who in ("alice", "carol"):
            failed, _, why = await call(
                link, who, "write_file", workspace="demo", path=f"{who}.txt", content=who
            )
            assert not failed, why
        _, log, _ = await call(link, "carol", "list_changes", workspace="demo")
        assert [(c["agent"]["name"], c["path"]) for c in log["changes"]] == [
            ("alice", "alice.txt"),
            ("carol", "carol.txt"),
        ]
        assert log["changes"][0]["agent"]["id"] != log["changes"][1]["agent"]["id"]
        failed, _, why = await call(link, "alice", "lock_file", workspace="demo", path="src")
        assert failed and "join" in why  # locks need a member, as before
        _, joined, _ = await call(link, "alice", "join_workspace", workspace="demo", name="al")
        token = joined["member_token"]
        failed, _, why = await call(
            link, "alice", "lock_file", workspace="demo", path="src", member_token=token
        )
        assert not failed, why
        failed, _, why = await call(
            link, "carol", "write_file", workspace="demo", path="src/x.py", content=""
        )
        assert failed and why.startswith("locked:")
        # alice's member token is alice's: carol cannot act as that member with it.
        failed, _, why = await call(
            link,
            "carol",
            "write_file",
            workspace="demo",
            path="src/x.py",
            content="",
            member_token=token,
        )
        assert failed and why.startswith("not_found:"), why


async def test_without_trust_the_key_is_ignored(tmp_path: Path) -> None:
    server = WorkspaceServer(tmp_path / "root", WorkspaceLimits())
    server.root.create("demo")
    try:
        async with gateway_link(server) as link:
            await call(link, "alice", "write_file", workspace="demo", path="a.txt", content="a")
            _, log, _ = await call(link, "alice", "list_changes", workspace="demo")
            assert log["changes"][0]["agent"] == {"id": "anonymous", "name": "anonymous"}
    finally:
        server.close()


@pytest.fixture
def plain_trusting(tmp_path: Path) -> Iterator[WorkspaceServer]:
    server = WorkspaceServer(tmp_path / "root", WorkspaceLimits(), trust_principal=True)
    server.root.create("team")
    yield server
    server.close()


async def test_one_principal_holds_at_most_its_share_of_member_places_DS3(
    plain_trusting: WorkspaceServer,
) -> None:
    limits = plain_trusting.limits
    share = limits.max_members_per_principal
    assert share * 4 == limits.max_members  # a quarter each
    async with gateway_link(plain_trusting) as link:
        for i in range(share):
            failed, _, why = await call(
                link, "alice", "join_workspace", workspace="team", name=f"sock{i}"
            )
            assert not failed, why
        failed, _, why = await call(link, "alice", "join_workspace", workspace="team", name="x")
        assert failed and why == (
            f"too_large: you already hold {share} of the workspace's {limits.max_members} "
            "member places (leave_workspace frees one)"
        )
        failed, _, why = await call(link, "carol", "join_workspace", workspace="team", name="c")
        assert not failed, why
        # Anonymous callers (no gateway) keep today's single cap.
        for _ in range(share + 1):
            failed, _, why = await call(link, None, "join_workspace", workspace="team", name="a")
            assert not failed, why


async def test_one_principal_creates_at_most_its_share_of_workspaces_DS3(
    tmp_path: Path,
) -> None:
    limits = WorkspaceLimits()
    share = limits.max_workspaces_per_principal
    assert share * 4 == limits.max_workspaces
    server = WorkspaceServer(tmp_path / "root", limits, trust_principal=True)
    try:
        async with gateway_link(server) as link:
            for i in range(share):
                failed, _, why = await call(link, "alice", "create_workspace", name=f"squat{i}")
                assert not failed, why
            failed, _, why = await call(link, "alice", "create_workspace", name="one-more")
            assert failed and why == (
                f"too_large: you already created {share} of the server's "
                f"{limits.max_workspaces} workspaces"
            )
            failed, _, why = await call(link, "carol", "create_workspace", name="carolproject")
            assert not failed, why
    finally:
        server.close()
    # The share survives a restart: which principal created what is kept beside them.
    again = WorkspaceServer(tmp_path / "root", limits, trust_principal=True)
    try:
        async with gateway_link(again) as link:
            failed, _, why = await call(link, "alice", "create_workspace", name="after-restart")
            assert failed and "you already created" in why
            failed, _, why = await call(link, None, "create_workspace", name="anonymous-one")
            assert not failed, why
    finally:
        again.close()
