"""Two (or three) agents in one workspace: version conflicts, change notifications,
broadcasts, advisory locks with expiry, and attribution of every change."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest

from bastion.client import ClientSession
from bastion.protocol.versions import Era
from bastion.workspace import WorkspaceServer
from tests.workspace.support import FakeClock, Inbox, client, ok, refused, text

pytestmark = pytest.mark.anyio
ERAS = [Era.LEGACY, Era.MODERN]
FILE_URI = "workspace://demo/src/app.py"


@pytest.mark.parametrize("era", ERAS)
async def test_stale_version_is_a_conflict_not_an_overwrite(
    server: WorkspaceServer, demo: Path, era: Era
) -> None:
    async with client(server, era) as a, client(server, era) as b:
        await ok(a, "write_file", workspace="demo", path="src/app.py", content="v1\n")
        seen_a = await ok(a, "read_file", workspace="demo", path="src/app.py")
        seen_b = await ok(b, "read_file", workspace="demo", path="src/app.py")
        assert seen_a["version"] == seen_b["version"]
        await ok(
            a,
            "write_file",
            workspace="demo",
            path="src/app.py",
            content="A\n",
            expected_version=seen_a["version"],
        )
        message = await refused(
            b,
            "write_file",
            workspace="demo",
            path="src/app.py",
            content="B\n",
            expected_version=seen_b["version"],
        )
        assert message.startswith("conflict:") and seen_b["version"] in message
        edit = await refused(
            b,
            "edit_file",
            workspace="demo",
            path="src/app.py",
            old_text="A",
            new_text="B",
            expected_version=seen_b["version"],
        )
        assert edit.startswith("conflict:")
        created = await refused(
            b, "write_file", workspace="demo", path="src/app.py", content="B\n", mode="create"
        )
        assert created.startswith("exists:")
    assert (demo / "src" / "app.py").read_text() == "A\n"


async def _listen(session: ClientSession, uris: list[str]) -> None:
    await session.request(
        "subscriptions/listen", {"notifications": {"resourceSubscriptions": uris}}
    )


@pytest.mark.parametrize("era", ERAS)
async def test_a_subscriber_hears_another_agents_changes(server: WorkspaceServer, era: Era) -> None:
    heard = Inbox()
    watched = [FILE_URI, "workspace-meta://demo/changes"]
    async with (
        client(server, era, heard) as b,
        client(server, era) as a,
        anyio.create_task_group() as tg,
    ):
        if era is Era.LEGACY:
            for uri in watched:
                await b.request("resources/subscribe", {"uri": uri})
        else:
            tg.start_soon(_listen, b, watched)
            await heard.wait_for("notifications/subscriptions/acknowledged")
        await ok(a, "write_file", workspace="demo", path="other.txt", content="x")
        await ok(a, "write_file", workspace="demo", path="src/app.py", content="1\n")
        await ok(a, "edit_file", workspace="demo", path="src/app.py", old_text="1", new_text="2")
        await ok(a, "move_file", workspace="demo", source="src/app.py", destination="src/main.py")
        updates = await heard.wait_for("notifications/resources/updated", 7)
        tg.cancel_scope.cancel()
    uris = [u["uri"] for u in updates]
    # The file three times (write, edit, moved away), the change log for all four changes;
    # nothing for other.txt, which B did not subscribe to.
    assert uris.count(FILE_URI) == 3
    assert uris.count("workspace-meta://demo/changes") == 4
    async with client(server, era) as b:
        after = await b.read_resource("workspace-meta://demo/changes")
        log = json.loads(after["contents"][0]["text"])["changes"]
        assert [(c["op"], c["path"]) for c in log] == [
            ("create", "other.txt"),
            ("create", "src/app.py"),
            ("edit", "src/app.py"),
            ("move", "src/app.py"),
        ]


async def test_broadcast_reaches_members_and_not_others(server: WorkspaceServer) -> None:
    inbox_a, inbox_b, inbox_c = Inbox(), Inbox(), Inbox()
    async with (
        client(server, Era.LEGACY, inbox_a) as a,
        client(server, Era.LEGACY, inbox_b) as b,
        client(server, Era.LEGACY, inbox_c) as c,
    ):
        alice = await ok(a, "join_workspace", workspace="demo", name="alice")
        await ok(b, "join_workspace", workspace="demo", name="bob")
        sent = await ok(a, "broadcast", workspace="demo", message="tests pass, merging")
        assert [m["name"] for m in sent["pushed_to"]] == ["bob"]
        got = await inbox_b.wait_for("notifications/message")
        assert got[0]["level"] == "notice"
        assert got[0]["logger"] == "bastion.workspace.broadcast"
        data = got[0]["data"]
        assert data["type"] == "workspace.broadcast" and data["workspace"] == "demo"
        assert data["message"] == "tests pass, merging" and data["from"] == alice["member"]
        # Anything sent to A or C would have arrived before these answers.
        await a.ping()
        await c.ping()
        assert inbox_c.of("notifications/message") == []
        assert inbox_a.of("notifications/message") == []
        not_member = await refused(c, "broadcast", workspace="demo", message="hi")
        assert "join workspace demo first" in not_member
        kept = await c.read_resource("workspace-meta://demo/messages")
        assert json.loads(kept["contents"][0]["text"])["messages"][0]["message"] == (
            "tests pass, merging"
        )


async def test_broadcast_to_a_stateless_member_through_a_listen_stream(
    server: WorkspaceServer,
) -> None:
    heard = Inbox()
    async with client(server, Era.MODERN, heard) as b, client(server, Era.MODERN) as a:
        token = (await ok(a, "join_workspace", workspace="demo", name="alice"))["member_token"]
        assert "member_token" in await refused(a, "broadcast", workspace="demo", message="x")
        async with anyio.create_task_group() as tg:
            tg.start_soon(_listen, b, ["workspace-meta://demo/messages"])
            await heard.wait_for("notifications/subscriptions/acknowledged")
            await ok(a, "broadcast", workspace="demo", message="hello", member_token=token)
            await heard.wait_for("notifications/resources/updated")
            tg.cancel_scope.cancel()
        kept = await b.read_resource("workspace-meta://demo/messages")
        message = json.loads(kept["contents"][0]["text"])["messages"][0]
        assert message["message"] == "hello" and message["from"]["name"] == "alice"
        unknown = await refused(
            a, "broadcast", workspace="demo", message="x", member_token="wsm_forged"
        )
        assert unknown.startswith("not_found:")


async def test_a_lock_blocks_others_until_it_expires(
    server: WorkspaceServer, clock: FakeClock, demo: Path
) -> None:
    async with client(server) as a, client(server) as b:
        await ok(a, "join_workspace", workspace="demo", name="alice")
        await ok(b, "join_workspace", workspace="demo", name="bob")
        await ok(a, "write_file", workspace="demo", path="src/app.py", content="a\n")
        lock = await ok(a, "lock_file", workspace="demo", path="src", seconds=30)
        assert lock["holder"]["name"] == "alice" and lock["expires_in_seconds"] == 30
        blocked = await refused(b, "write_file", workspace="demo", path="src/app.py", content="b\n")
        assert blocked.startswith("locked: src is locked by alice (m-")
        assert lock["expires_at"] in blocked
        for tool, args in [
            ("edit_file", {"path": "src/app.py", "old_text": "a", "new_text": "b"}),
            ("delete_file", {"path": "src/app.py"}),
            ("move_file", {"source": "src/app.py", "destination": "app.py"}),
            ("move_file", {"source": "src", "destination": "lib"}),
            ("lock_file", {"path": "src/app.py"}),
            ("unlock_file", {"path": "src"}),
        ]:
            assert (await refused(b, tool, workspace="demo", **args)).startswith("locked:")
        await ok(a, "write_file", workspace="demo", path="src/app.py", content="a2\n")
        await ok(b, "write_file", workspace="demo", path="README.md", content="free\n")
        clock.advance(29)
        await refused(b, "write_file", workspace="demo", path="src/app.py", content="b\n")
        clock.advance(2)
        await ok(b, "write_file", workspace="demo", path="src/app.py", content="b\n")
        members = await ok(b, "list_members", workspace="demo")
        assert members["locks"] == []
    assert (demo / "src" / "app.py").read_text() == "b\n"


async def test_locks_end_with_unlock_leave_or_disconnect(server: WorkspaceServer) -> None:
    async with client(server) as b:
        async with client(server) as a:
            await ok(a, "join_workspace", workspace="demo", name="alice")
            await ok(a, "lock_file", workspace="demo", path="x.txt")
            await refused(b, "write_file", workspace="demo", path="x.txt", content="b")
            await ok(a, "unlock_file", workspace="demo", path="x.txt")
            await ok(b, "write_file", workspace="demo", path="x.txt", content="b")
            await ok(a, "lock_file", workspace="demo", path="x.txt")
            await ok(a, "leave_workspace", workspace="demo")
            await ok(b, "write_file", workspace="demo", path="x.txt", content="c")
            await ok(a, "join_workspace", workspace="demo", name="alice")
            await ok(a, "lock_file", workspace="demo", path="x.txt")
            names = [m["name"] for m in (await ok(b, "list_members", workspace="demo"))["members"]]
            assert names == ["alice"]
        # A's session ended: alice is gone, and her lock with her.
        listed = await ok(b, "list_members", workspace="demo")
        assert listed == {"members": [], "locks": []}
        await ok(b, "write_file", workspace="demo", path="x.txt", content="d")


async def test_every_change_is_attributed(server: WorkspaceServer) -> None:
    async with client(server, Era.LEGACY) as a, client(server, Era.MODERN) as b:
        alice = (await ok(a, "join_workspace", workspace="demo", name="alice"))["member"]
        joined = await ok(b, "join_workspace", workspace="demo", name="bob")
        bob, token = joined["member"], joined["member_token"]
        await ok(a, "write_file", workspace="demo", path="a.py", content="x = 1\n")
        await ok(
            b,
            "edit_file",
            workspace="demo",
            path="a.py",
            old_text="1",
            new_text="2",
            member_token=token,
        )
        await ok(
            b, "move_file", workspace="demo", source="a.py", destination="b.py", member_token=token
        )
        await ok(a, "delete_file", workspace="demo", path="b.py")
        await ok(b, "write_file", workspace="demo", path="anon.txt", content="?")
        log = await ok(a, "list_changes", workspace="demo")
        rows = [(c["agent"], c["op"], c["path"], c.get("to")) for c in log["changes"]]
        assert rows == [
            (alice, "create", "a.py", None),
            (bob, "edit", "a.py", None),
            (bob, "move", "a.py", "b.py"),
            (alice, "delete", "b.py", None),
            ({"id": "anonymous", "name": "anonymous"}, "create", "anon.txt", None),
        ]
        assert log["latest_seq"] == 5
        assert all(c["time"].endswith("Z") for c in log["changes"])
        page = await ok(a, "list_changes", workspace="demo", since=3, limit=1)
        assert [c["seq"] for c in page["changes"]] == [4]
        summary = await text(a, "list_changes", workspace="demo", since=4)
        assert "anonymous (anonymous) create anon.txt" in summary


async def test_members_and_their_running_field(server: WorkspaceServer) -> None:
    async with client(server) as a:
        await ok(a, "join_workspace", workspace="demo", name="alice")
        again = await refused(a, "join_workspace", workspace="demo", name="alice2")
        assert "already joined" in again
        assert "printable" in await refused(a, "join_workspace", workspace="demo", name="a\x1bb")
        listed: dict[str, Any] = await ok(a, "list_members", workspace="demo")
        (member,) = listed["members"]
        assert member["name"] == "alice" and member["running"] == []
        assert member["connection"] == "session"
        assert (await ok(a, "list_workspaces"))["workspaces"] == [{"name": "demo", "members": 1}]
