"""The file tools one by one: schemas, write modes, binary content, edits, listing,
search, delete, move, size and count caps, resources, and argument validation."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from bastion.errors import PeerError
from bastion.protocol.versions import Era
from bastion.workspace import WorkspaceLimits, WorkspaceServer
from tests.workspace.support import Inbox, client, ok, refused, text

pytestmark = pytest.mark.anyio
TOOLS = {
    "create_workspace",
    "list_workspaces",
    "read_file",
    "write_file",
    "edit_file",
    "list_files",
    "search",
    "delete_file",
    "move_file",
    "join_workspace",
    "leave_workspace",
    "list_members",
    "run_command",
    "list_executions",
    "cancel_execution",
    "get_policy",
    "broadcast",
    "lock_file",
    "unlock_file",
    "list_changes",
}


async def test_tools_declare_their_schemas(server: WorkspaceServer) -> None:
    async with client(server) as s:
        tools = {t["name"]: t for t in await s.list_tools()}
    assert set(tools) == TOOLS
    write = tools["write_file"]
    assert write["inputSchema"]["required"] == ["workspace", "path", "content"]
    assert write["inputSchema"]["additionalProperties"] is False
    assert sorted(write["inputSchema"]["properties"]["mode"]["enum"]) == ["create", "overwrite"]
    assert write["annotations"] == {"readOnlyHint": False, "destructiveHint": True}
    assert tools["read_file"]["annotations"] == {"readOnlyHint": True}
    for tool in tools.values():
        assert tool["inputSchema"]["type"] == "object"
        assert tool["outputSchema"]["type"] == "object"


async def test_invalid_arguments_are_tool_errors(server: WorkspaceServer) -> None:
    async with client(server) as s:
        wrong = await refused(s, "read_file", workspace="demo", path=5)
        assert wrong == "invalid arguments: Expected `str`, got `int` - at `$.path`"
        assert "unknown field" in await refused(s, "read_file", workspace="demo", path="a", extra=1)
        assert "required field" in await refused(s, "read_file", workspace="demo")
        assert "not_found: no workspace named nope" in await refused(
            s, "read_file", workspace="nope", path="a"
        )


async def test_workspaces_are_created_once_and_capped(tmp_path: Path) -> None:
    server = WorkspaceServer(tmp_path / "root", WorkspaceLimits(max_workspaces=2))
    try:
        async with client(server) as s:
            await ok(s, "create_workspace", name="one")
            assert (await refused(s, "create_workspace", name="one")).startswith("exists:")
            await ok(s, "create_workspace", name="two")
            capped = await refused(s, "create_workspace", name="three")
            assert capped.startswith("too_large:")
            listed = await ok(s, "list_workspaces")
            assert [w["name"] for w in listed["workspaces"]] == ["one", "two"]
    finally:
        server.close()


async def test_write_modes_directories_and_binary(server: WorkspaceServer, demo: Path) -> None:
    async with client(server) as s:
        made = await ok(
            s, "write_file", workspace="demo", path="a/b/c.txt", content="hi", mode="create"
        )
        assert made["created"] is True and made["size"] == 2
        assert (
            await refused(
                s, "write_file", workspace="demo", path="x/y.txt", content="z", make_dirs=False
            )
        ).startswith("not_found:")
        blob = bytes(range(256))
        await ok(
            s,
            "write_file",
            workspace="demo",
            path="bin.dat",
            content=base64.b64encode(blob).decode(),
            encoding="base64",
        )
        read = await ok(s, "read_file", workspace="demo", path="bin.dat")
        assert read["encoding"] == "base64"
        raw = await s.call_tool("read_file", {"workspace": "demo", "path": "bin.dat"})
        assert base64.b64decode(raw["content"][0]["text"]) == blob
        resource = await s.read_resource(read["uri"])
        assert base64.b64decode(resource["contents"][0]["blob"]) == blob
        assert resource["contents"][0]["_meta"]["bastion.dev/version"] == read["version"]
        assert "base64" in await refused(
            s, "write_file", workspace="demo", path="b", content="***", encoding="base64"
        )
        assert "directory" in await refused(
            s, "write_file", workspace="demo", path="a", content="x"
        )
    assert (demo / "bin.dat").read_bytes() == blob
    assert (demo / "a" / "b" / "c.txt").read_text() == "hi"


async def test_writes_keep_the_mode_but_not_setuid(server: WorkspaceServer, demo: Path) -> None:
    (demo / "run.sh").write_text("#!/bin/sh\n")
    (demo / "run.sh").chmod(0o4755)
    async with client(server) as s:
        await ok(s, "write_file", workspace="demo", path="run.sh", content="#!/bin/sh\necho\n")
    assert (demo / "run.sh").stat().st_mode & 0o7777 == 0o755


async def test_size_caps(tmp_path: Path) -> None:
    limits = WorkspaceLimits(max_read_bytes=10, max_write_bytes=20)
    server = WorkspaceServer(tmp_path / "root", limits)
    server.root.create("demo")
    (tmp_path / "root" / "demo" / "big.txt").write_text("x" * 15)
    try:
        async with client(server) as s:
            big = await refused(s, "read_file", workspace="demo", path="big.txt")
            assert big == "too_large: big.txt is 15 bytes; the limit is 10"
            assert (
                await refused(s, "write_file", workspace="demo", path="w", content="y" * 21)
            ).startswith("too_large:")
            await ok(s, "write_file", workspace="demo", path="w", content="y" * 20)
    finally:
        server.close()


async def test_edit_must_match_exactly_once(server: WorkspaceServer, demo: Path) -> None:
    async with client(server) as s:
        await ok(s, "write_file", workspace="demo", path="m.py", content="a = 1\nb = 1\n")
        twice = await refused(
            s, "edit_file", workspace="demo", path="m.py", old_text="= 1", new_text="= 2"
        )
        assert "appears 2 times" in twice
        absent = await refused(
            s, "edit_file", workspace="demo", path="m.py", old_text="zzz", new_text="y"
        )
        assert "not found" in absent
        once = await ok(
            s, "edit_file", workspace="demo", path="m.py", old_text="b = 1", new_text="b = 3"
        )
        assert once["replacements"] == 1
        every = await ok(
            s,
            "edit_file",
            workspace="demo",
            path="m.py",
            old_text=" = ",
            new_text="=",
            replace_all=True,
            expected_version=once["version"],
        )
        assert every["replacements"] == 2
        assert "must not be empty" in await refused(
            s, "edit_file", workspace="demo", path="m.py", old_text="", new_text="x"
        )
    assert (demo / "m.py").read_text() == "a=1\nb=3\n"


async def test_list_and_search_are_bounded(tmp_path: Path) -> None:
    limits = WorkspaceLimits(max_list_entries=3, max_search_results=2)
    server = WorkspaceServer(tmp_path / "root", limits)
    server.root.create("demo")
    root = tmp_path / "root" / "demo"
    for i in range(4):
        (root / f"f{i}.txt").write_text("needle\nNEEDLE\n")
    (root / "sub").mkdir()
    (root / "bin.dat").write_bytes(b"needle\x00")
    (root / ".git").mkdir()
    (root / ".git" / "HEAD").write_text("needle")
    try:
        async with client(server) as s:
            listed = await ok(s, "list_files", workspace="demo")
            assert listed["truncated"] is True and len(listed["entries"]) == 3
            found = await ok(s, "search", workspace="demo", query="needle")
            assert found["truncated"] is True and len(found["matches"]) == 2
            folded = await ok(
                s, "search", workspace="demo", query="needle", path="sub", ignore_case=True
            )
            assert folded == {"matches": [], "truncated": False, "files_searched": 0}
    finally:
        server.close()
    server = WorkspaceServer(tmp_path / "root")
    try:
        async with client(server) as s:
            found = await ok(s, "search", workspace="demo", query="needle", ignore_case=True)
            paths = {m["path"] for m in found["matches"]}
            assert paths == {f"f{i}.txt" for i in range(4)}  # not bin.dat, not .git
            assert len(found["matches"]) == 8
            assert "f0.txt:2: NEEDLE" in await text(s, "search", workspace="demo", query="NEEDLE")
    finally:
        server.close()


async def test_delete_and_move(server: WorkspaceServer, demo: Path) -> None:
    async with client(server) as s:
        await ok(s, "write_file", workspace="demo", path="d/one.txt", content="1")
        await ok(s, "write_file", workspace="demo", path="two.txt", content="2")
        assert "not empty" in await refused(s, "delete_file", workspace="demo", path="d")
        exists = await refused(
            s, "move_file", workspace="demo", source="two.txt", destination="d/one.txt"
        )
        assert exists.startswith("exists:")
        await ok(
            s,
            "move_file",
            workspace="demo",
            source="two.txt",
            destination="d/one.txt",
            overwrite=True,
        )
        assert "into itself" in await refused(
            s, "move_file", workspace="demo", source="d", destination="d/e"
        )
        await ok(s, "move_file", workspace="demo", source="d", destination="e/f")
        assert (await ok(s, "delete_file", workspace="demo", path="e", recursive=True)) == {
            "path": "e",
            "type": "dir",
        }
        assert (await refused(s, "delete_file", workspace="demo", path="e")).startswith(
            "not_found:"
        )
    assert sorted(p.name for p in demo.iterdir()) == []


async def test_resources_list_and_list_changed(server: WorkspaceServer) -> None:
    heard = Inbox()
    async with client(server, Era.LEGACY, heard) as s:
        templates = await s.list_all("resources/templates/list", "resourceTemplates")
        assert [t["uriTemplate"] for t in templates] == [
            "workspace://{workspace}/{+path}",
            "workspace-meta://{workspace}/{channel}",
        ]
        await ok(s, "create_workspace", name="second")
        await heard.wait_for("notifications/resources/list_changed")
        listed = [r["uri"] for r in await s.list_all("resources/list", "resources")]
        assert "workspace-meta://second/changes" in listed
        assert "workspace-meta://demo/members" in listed
        with pytest.raises(PeerError) as missing:
            await s.read_resource("workspace://demo/nope.txt")
        assert missing.value.peer_code == -32002
        assert missing.value.peer_data == {"uri": "workspace://demo/nope.txt"}
