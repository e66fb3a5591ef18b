"""Path confinement, attacked through the file tools the way an agent (or a command it ran
in the sandbox) could: ``..``, absolute paths, symlinks to outside files and directories,
a directory swapped for a symlink while the tools run, hard links, device files, FIFOs,
sockets, NUL bytes, overlong paths and Unicode look-alikes. Each attack asserts that the
outside file was neither read nor written; positive controls show the same tools work.
SECURITY.md S5 (servers MUST validate resource URIs and tool inputs)."""

from __future__ import annotations

import os
import socket
import stat
import threading
from pathlib import Path

import anyio
import pytest

from bastion.errors import PeerError
from bastion.protocol.versions import Era
from bastion.workspace import WorkspaceServer
from tests.workspace.support import client, ok, refused

pytestmark = pytest.mark.anyio
SECRET = "TOP SECRET"


async def test_dot_dot_and_absolute_paths_are_refused(
    server: WorkspaceServer, outside: Path
) -> None:
    async with client(server) as s:
        for path in [
            "../outside/secret.txt",
            "../../outside/secret.txt",
            "a/../../outside/secret.txt",
            "./..",
            str(outside / "secret.txt"),
            "/etc/passwd",
        ]:
            message = await refused(s, "read_file", workspace="demo", path=path)
            assert SECRET not in message
            assert message.startswith("invalid:"), message
            await refused(s, "write_file", workspace="demo", path=path, content="PWNED")
        message = await refused(s, "list_files", workspace="demo", path="..")
        assert "'..' is not allowed" in message
        await refused(s, "search", workspace="demo", path="..", query="SECRET")
        await refused(s, "move_file", workspace="demo", source="x", destination="../outside/x")
    assert (outside / "secret.txt").read_text() == SECRET + "\n"
    assert sorted(os.listdir(outside)) == ["secret.txt"]


async def test_symlink_to_an_outside_file_is_never_followed(
    server: WorkspaceServer, demo: Path, outside: Path
) -> None:
    (demo / "link.txt").symlink_to(outside / "secret.txt")
    async with client(server) as s:
        message = await refused(s, "read_file", workspace="demo", path="link.txt")
        assert "symbolic link" in message and SECRET not in message
        for mode in ("overwrite", "create"):
            await refused(
                s, "write_file", workspace="demo", path="link.txt", content="PWNED", mode=mode
            )
        await refused(
            s, "edit_file", workspace="demo", path="link.txt", old_text="TOP", new_text="X"
        )
        with pytest.raises(PeerError) as bad:
            await s.read_resource("workspace://demo/link.txt")
        assert SECRET not in str(bad.value.peer_data) + bad.value.peer_message
        found = await ok(s, "search", workspace="demo", query="SECRET")
        assert found["matches"] == []
        listed = await ok(s, "list_files", workspace="demo")
        assert listed["entries"] == [{"path": "link.txt", "type": "symlink", "size": 0}]
        # Deleting the link removes the link, not what it points to.
        await ok(s, "delete_file", workspace="demo", path="link.txt")
    assert (outside / "secret.txt").read_text() == SECRET + "\n"
    assert not (demo / "link.txt").is_symlink()


async def test_symlink_to_an_outside_directory_is_never_entered(
    server: WorkspaceServer, demo: Path, outside: Path
) -> None:
    (demo / "out").symlink_to(outside, target_is_directory=True)
    async with client(server) as s:
        await refused(s, "read_file", workspace="demo", path="out/secret.txt")
        message = await refused(
            s, "write_file", workspace="demo", path="out/new.txt", content="PWNED"
        )
        assert "symbolic link" in message
        await refused(s, "list_files", workspace="demo", path="out")
        await refused(s, "search", workspace="demo", path="out", query="SECRET")
        tree = await ok(s, "list_files", workspace="demo", recursive=True)
        assert [e["path"] for e in tree["entries"]] == ["out"]
        assert (await ok(s, "search", workspace="demo", query="SECRET"))["matches"] == []
        await ok(s, "write_file", workspace="demo", path="mine.txt", content="x")
        await refused(
            s, "move_file", workspace="demo", source="mine.txt", destination="out/mine.txt"
        )
        await refused(s, "delete_file", workspace="demo", path="out/secret.txt")
    assert sorted(os.listdir(outside)) == ["secret.txt"]


def _flipper(demo: Path, stash: Path, stop: threading.Event) -> None:
    """Swap ``demo/race`` between a real directory and a symlink to outside, forever."""
    real, link = stash / "real", stash / "link"
    while not stop.is_set():
        os.rename(real, demo / "race")
        os.rename(demo / "race", real)
        os.rename(link, demo / "race")
        os.rename(demo / "race", link)


async def test_directory_swapped_for_a_symlink_mid_operation(
    server: WorkspaceServer, demo: Path, outside: Path, tmp_path: Path
) -> None:
    stash = tmp_path / "stash"
    (stash / "real").mkdir(parents=True)
    (stash / "real" / "inner.txt").write_text("SAFE")
    (outside / "inner.txt").write_text(SECRET)
    (stash / "link").symlink_to(outside, target_is_directory=True)
    stop = threading.Event()
    flipper = threading.Thread(target=_flipper, args=(demo, stash, stop))
    flipper.start()
    outcomes: set[str] = set()
    try:
        async with client(server) as s:
            for i in range(150):
                read = await s.call_tool(
                    "read_file", {"workspace": "demo", "path": "race/inner.txt"}
                )
                body = read["content"][0]["text"]
                assert SECRET not in body
                outcomes.add("error" if read.get("isError") else body)
                await s.call_tool(
                    "write_file",
                    {
                        "workspace": "demo",
                        "path": "race/inner.txt",
                        "content": f"W{i}",
                        "make_dirs": False,  # "race" may be missing for an instant
                    },
                )
                await s.call_tool(
                    "list_files", {"workspace": "demo", "path": "race", "recursive": True}
                )
    finally:
        stop.set()
        flipper.join()
    assert (outside / "inner.txt").read_text() == SECRET
    assert sorted(os.listdir(outside)) == ["inner.txt", "secret.txt"]
    # The race really happened: some reads met the symlink (refused), some the directory.
    assert "error" in outcomes and len(outcomes) > 1


async def test_directory_swap_race_against_the_descriptor_walk(
    server: WorkspaceServer, demo: Path, outside: Path, tmp_path: Path
) -> None:
    """The same race, thousands of times, straight at the confined read and write."""
    from bastion.workspace.errors import WorkspaceError
    from bastion.workspace.jail import read_file, write_file
    from bastion.workspace.paths import parse_path

    stash = tmp_path / "stash"
    (stash / "real").mkdir(parents=True)
    (stash / "real" / "inner.txt").write_text("SAFE")
    (outside / "inner.txt").write_text(SECRET)
    (stash / "link").symlink_to(outside, target_is_directory=True)
    rel = parse_path("race/inner.txt")
    stop = threading.Event()
    flipper = threading.Thread(target=_flipper, args=(demo, stash, stop))
    flipper.start()
    reads = refusals = 0
    try:
        with server.root.opened("demo") as fd:
            for _ in range(3000):
                try:
                    data = read_file(fd, rel, 1024)
                    assert data.data == b"SAFE"
                    reads += 1
                    write_file(
                        fd,
                        rel,
                        b"SAFE",
                        expected_version=None,
                        create_only=False,
                        make_dirs=False,
                        size_cap=1024,
                    )
                except WorkspaceError:
                    refusals += 1
    finally:
        stop.set()
        flipper.join()
    assert (outside / "inner.txt").read_text() == SECRET
    assert sorted(os.listdir(outside)) == ["inner.txt", "secret.txt"]
    assert reads > 0 and refusals > 0


async def test_hard_link_to_an_outside_file_is_refused(
    server: WorkspaceServer, demo: Path, outside: Path
) -> None:
    os.link(outside / "secret.txt", demo / "hard.txt")
    async with client(server) as s:
        message = await refused(s, "read_file", workspace="demo", path="hard.txt")
        assert "hard links" in message and SECRET not in message
        await refused(s, "write_file", workspace="demo", path="hard.txt", content="PWNED")
        await refused(
            s, "edit_file", workspace="demo", path="hard.txt", old_text="TOP", new_text="X"
        )
        assert (await ok(s, "search", workspace="demo", query="SECRET"))["matches"] == []
    assert (outside / "secret.txt").read_text() == SECRET + "\n"


async def test_device_files_are_refused(server: WorkspaceServer, demo: Path) -> None:
    os.mknod(demo / "zero", stat.S_IFCHR | 0o600, os.makedev(1, 5))  # /dev/zero
    (demo / "zlink").symlink_to("/dev/zero")
    async with client(server) as s:
        message = await refused(s, "read_file", workspace="demo", path="zero")
        assert "a device" in message
        await refused(s, "write_file", workspace="demo", path="zero", content="x")
        await refused(s, "read_file", workspace="demo", path="zlink")
        await ok(s, "search", workspace="demo", query="x")  # skips it, does not hang
    assert stat.S_ISCHR((demo / "zero").lstat().st_mode)


async def test_fifo_and_socket_do_not_hang_and_are_refused(
    server: WorkspaceServer, demo: Path
) -> None:
    os.mkfifo(demo / "pipe")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(demo / "sock"))
    try:
        async with client(server) as s:
            with anyio.fail_after(5):
                assert "a FIFO" in await refused(s, "read_file", workspace="demo", path="pipe")
                await refused(s, "write_file", workspace="demo", path="pipe", content="x")
                await refused(
                    s, "edit_file", workspace="demo", path="pipe", old_text="a", new_text="b"
                )
                assert "a socket" in await refused(s, "read_file", workspace="demo", path="sock")
                assert (await ok(s, "search", workspace="demo", query="x"))["matches"] == []
    finally:
        sock.close()
    assert stat.S_ISFIFO((demo / "pipe").lstat().st_mode)


async def test_nul_bytes_long_paths_and_control_characters(server: WorkspaceServer) -> None:
    async with client(server) as s:
        assert "NUL" in await refused(s, "write_file", workspace="demo", path="a\x00b", content="")
        long_name = "x" * 256
        assert "longer than 255" in await refused(
            s, "write_file", workspace="demo", path=long_name, content=""
        )
        deep = "/".join(["d"] * 65)
        assert "deeper" in await refused(s, "write_file", workspace="demo", path=deep, content="")
        huge = "/".join(["\u00e9" * 100] * 21)  # 2120 characters, 4220 UTF-8 bytes
        assert "longer than 4000" in await refused(s, "read_file", workspace="demo", path=huge)
        for sneaky in ["evil\u202etxt.py", "line\nbreak", "tab\there", "zw\u2028sep"]:
            assert "character" in await refused(
                s, "write_file", workspace="demo", path=sneaky, content=""
            )
        assert "'\\'" in await refused(s, "read_file", workspace="demo", path="..\\..\\etc\\passwd")
        with pytest.raises(PeerError):
            await s.read_resource("workspace://demo/a%00b")
        with pytest.raises(PeerError):
            await s.read_resource("workspace://demo/%2e%2e/%2e%2e/etc/passwd")
        with pytest.raises(PeerError):
            await s.read_resource("workspace://demo/..%2F..%2Foutside%2Fsecret.txt")


async def test_unicode_look_alikes_are_refused_and_plain_unicode_works(
    server: WorkspaceServer, demo: Path
) -> None:
    """Fullwidth dots and slashes are never normalized into ``..`` or ``/``, and are
    refused so that no name reads as a traversal (SECURITY.md IN-4)."""
    async with client(server) as s:
        for look_alike in ["\uff0e\uff0e/secret.txt", "a\u2215b", "\u2024\u2024", "a\uff3cb"]:
            message = await refused(s, "write_file", workspace="demo", path=look_alike, content="x")
            assert "looks like" in message
        await ok(s, "write_file", workspace="demo", path="caf\u00e9/na\u0131ve.py", content="u")
        read = await ok(s, "read_file", workspace="demo", path="caf\u00e9/na\u0131ve.py")
        assert read["uri"] == "workspace://demo/caf%C3%A9/na%C4%B1ve.py"
        resource = await s.read_resource(read["uri"])
        assert resource["contents"][0]["text"] == "u"
        with pytest.raises(PeerError) as encoded:
            await s.read_resource("workspace://demo/caf%C3%A9%2Fna%C4%B1ve.py")
        assert "encodes" in encoded.value.peer_message
    assert sorted(p.name for p in demo.iterdir()) == ["caf\u00e9"]


async def test_workspace_names_cannot_escape_the_root(
    server: WorkspaceServer, outside: Path
) -> None:
    (server.root.path / "evil").symlink_to(outside, target_is_directory=True)
    async with client(server) as s:
        for name in ["..", ".", "../outside", "/etc", "Demo", "a/b", "-x", ""]:
            await refused(s, "create_workspace", name=name)
            await refused(s, "read_file", workspace=name, path="secret.txt")
        message = await refused(s, "read_file", workspace="evil", path="secret.txt")
        assert SECRET not in message
        listed = await ok(s, "list_workspaces")
        assert [w["name"] for w in listed["workspaces"]] == ["demo"]


@pytest.mark.parametrize("era", [Era.LEGACY, Era.MODERN])
async def test_positive_controls(server: WorkspaceServer, demo: Path, era: Era) -> None:
    """What must keep working: nested files, a name with spaces, reading what was written,
    a file inside a real subdirectory, a link count of one after rewriting."""
    async with client(server, era) as s:
        await ok(s, "write_file", workspace="demo", path="src/pkg/mod one.py", content="A = 1\n")
        read = await ok(s, "read_file", workspace="demo", path="src/pkg/mod one.py")
        assert read["size"] == 6 and read["encoding"] == "utf-8"
        await ok(s, "write_file", workspace="demo", path="src/pkg/mod one.py", content="A = 2\n")
        hits = await ok(s, "search", workspace="demo", query="A = 2")
        assert hits["matches"] == [{"path": "src/pkg/mod one.py", "line": 1, "text": "A = 2"}]
    assert (demo / "src" / "pkg" / "mod one.py").read_text() == "A = 2\n"
    assert (demo / "src" / "pkg" / "mod one.py").stat().st_nlink == 1
