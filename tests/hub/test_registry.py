"""The registry directory and its files: where they go, who may read them, and that a
reader survives whatever it finds there."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import msgspec
import pytest

from bastion.errors import ConfigError
from bastion.hub import (
    InstanceRecord,
    default_registry_dir,
    ensure_registry_dir,
    is_loopback_url,
    read_record,
    registered,
    write_record,
)
from bastion.hub.registry import MAX_RECORD_BYTES, record_path

HOME = Path("/home/ada")


def record(**changes: object) -> InstanceRecord:
    base = InstanceRecord.create(
        name="demo", url="http://127.0.0.1:4321/mcp", project="/src/demo", credential="s3cret"
    )
    return msgspec.structs.replace(base, **changes)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_directory_follows_xdg_data_home_and_the_platform() -> None:
    linux = default_registry_dir({"XDG_DATA_HOME": "/data"}, platform="linux", home=HOME)
    assert linux == Path("/data/bastion/instances")
    assert default_registry_dir({}, platform="linux", home=HOME) == Path(
        "/home/ada/.local/share/bastion/instances"
    )
    # The XDG spec: a relative value is ignored.
    relative = default_registry_dir({"XDG_DATA_HOME": "data"}, platform="linux", home=HOME)
    assert relative == HOME / ".local/share/bastion/instances"
    assert default_registry_dir({}, platform="darwin", home=HOME) == Path(
        "/home/ada/Library/Application Support/bastion/instances"
    )
    windows = default_registry_dir({"LOCALAPPDATA": "C:/Users/ada/AppData/Local"}, platform="win32")
    assert windows == Path("C:/Users/ada/AppData/Local/bastion/instances")


def test_directory_is_created_private_and_tightened(tmp_path: Path) -> None:
    directory = ensure_registry_dir(tmp_path / "a" / "instances")
    assert mode(directory) == 0o700
    directory.chmod(0o755)
    ensure_registry_dir(directory)
    assert mode(directory) == 0o700


def test_directory_refused_when_not_ours_or_not_a_directory(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.mkdir(mode=0o700)
    link = tmp_path / "link"
    link.symlink_to(target)
    with pytest.raises(ConfigError, match="not a directory"):
        ensure_registry_dir(link)
    if os.geteuid() != 0:
        pytest.skip("changing a directory's owner needs root")
    os.chown(target, 4242, -1)
    with pytest.raises(ConfigError, match="another user"):
        ensure_registry_dir(target)


def test_up1_a_registry_another_user_could_swap_through_its_parent_is_refused(
    tmp_path: Path,
) -> None:
    """UP-1: the registry directory was checked (ours, 0700) but not its parent: one that
    other users may write (not sticky) lets them rename the directory away and put theirs
    in its place, with instances of their choosing. Such a directory is refused, naming the
    ``chmod`` that fixes it; a sticky parent (as /tmp is) is fine, the directory being ours."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(ConfigError, match=f"other users may replace it.*chmod go-w {shared}"):
        ensure_registry_dir(shared / "instances")
    with pytest.raises(ConfigError, match="other users may replace it"):
        write_record(shared / "instances", record())
    shared.chmod(0o1777)  # sticky: only the directory's owner (us) may rename it
    ensure_registry_dir(shared / "instances")
    shared.chmod(0o755)
    above = shared / "a" / "b"  # an ancestor further up counts as much as the parent
    above.mkdir(parents=True)
    shared.chmod(0o757)
    with pytest.raises(ConfigError, match=f"other users may replace it.*{shared}"):
        ensure_registry_dir(above / "instances")


def test_up1_a_registry_under_another_users_directory_is_refused(tmp_path: Path) -> None:
    """UP-1: a parent another user owns (they may make it writable at will) or whose group
    has other members may write is refused; a user private group is no other user."""
    if os.geteuid() != 0:
        pytest.skip("changing a directory's owner needs root")
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o755)
    os.chown(theirs, 4242, -1)
    with pytest.raises(ConfigError, match="another user"):
        ensure_registry_dir(theirs / "instances")
    shared = tmp_path / "group"
    shared.mkdir()
    shared.chmod(0o775)
    ensure_registry_dir(shared / "instances")  # root's own group, no other member
    os.chown(shared, -1, 4242)
    with pytest.raises(ConfigError, match="other users may replace it"):
        ensure_registry_dir(shared / "instances")


def test_record_is_written_0600_atomically_and_read_back(tmp_path: Path) -> None:
    entry = record()
    path = write_record(tmp_path / "instances", entry)
    assert path == record_path(tmp_path / "instances", entry.id)
    assert mode(path) == 0o600
    assert read_record(path) == entry
    first_inode = path.stat().st_ino
    again = msgspec.structs.replace(entry, name="renamed")
    write_record(tmp_path / "instances", again)
    # A rename, not a rewrite in place: a reader holds either the old file or the new one.
    assert path.stat().st_ino != first_inode
    assert read_record(path) == again
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temporary left


def test_a_failed_write_keeps_the_old_record_and_leaves_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entry = record()
    path = write_record(tmp_path, entry)

    def broken_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="No space"):
        write_record(tmp_path, msgspec.structs.replace(entry, name="new"))
    assert read_record(path) == entry
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_registered_removes_the_file_on_exit_and_on_error(tmp_path: Path) -> None:
    with registered(tmp_path, record()) as path:
        assert path.exists()
    assert not path.exists()
    with pytest.raises(RuntimeError), registered(tmp_path, record()) as path:
        raise RuntimeError
    assert not path.exists()


def test_the_credential_stays_out_of_repr() -> None:
    assert "s3cret" not in repr(record())


@pytest.mark.parametrize(
    ("url", "loopback"),
    [
        ("http://127.0.0.1:8080/mcp", True),
        ("http://localhost:8080/mcp", True),
        ("https://[::1]:8443/mcp", True),
        ("http://127.8.9.10:80/", True),
        ("http://127.0.0.1/mcp", False),  # no port: the hub needs one to probe
        ("http://10.0.0.1:8080/mcp", False),
        ("http://example.com:8080/mcp", False),
        ("http://user:pw@127.0.0.1:8080/mcp", False),
        ("file://127.0.0.1:8080/etc", False),
        ("http://127.0.0.1:99999/", False),
        ("not a url", False),
    ],
)
def test_only_loopback_urls_are_accepted(url: str, loopback: bool) -> None:
    assert is_loopback_url(url) is loopback


def test_create_refuses_a_remote_url() -> None:
    with pytest.raises(ConfigError, match="loopback"):
        InstanceRecord.create(name="x", url="http://192.0.2.1:80/mcp", project="/")


def _write(directory: Path, name: str, data: bytes) -> Path:
    path = directory / name
    path.write_bytes(data)
    path.chmod(0o600)
    return path


def valid_bytes(**changes: object) -> tuple[str, bytes]:
    entry = record(**changes)
    return f"{entry.id}.json", msgspec.json.encode(entry)


@pytest.mark.parametrize(
    ("case", "expected_log"),
    [
        ("not json", "not JSON"),
        ("wrong type", "invalid record"),
        ("unknown field", "invalid record"),
        ("bad id", "invalid record"),
        ("name mismatch", "does not match"),
        ("remote url", "not loopback"),
        ("port mismatch", "port differs"),
        ("oversized", "larger than"),
        ("symlink", "Too many levels"),
        ("fifo", "not a regular file"),
        ("directory", "not a regular file"),
    ],
)
def test_hostile_or_corrupt_files_are_skipped_with_a_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, case: str, expected_log: str
) -> None:
    name, good = valid_bytes()
    doc = msgspec.json.decode(good)
    if case == "not json":
        path = _write(tmp_path, name, b'{"id": ')
    elif case == "wrong type":
        path = _write(tmp_path, name, msgspec.json.encode({**doc, "port": "80"}))
    elif case == "unknown field":
        path = _write(tmp_path, name, msgspec.json.encode({**doc, "extra": 1}))
    elif case == "bad id":
        path = _write(tmp_path, "..json", msgspec.json.encode({**doc, "id": "../../x"}))
    elif case == "name mismatch":
        path = _write(tmp_path, "someone-else.json", good)
    elif case == "remote url":
        path = _write(tmp_path, name, msgspec.json.encode({**doc, "url": "http://10.1.1.1:4321/"}))
    elif case == "port mismatch":
        path = _write(tmp_path, name, msgspec.json.encode({**doc, "port": 4322}))
    elif case == "oversized":
        padded = msgspec.json.encode({**doc, "project": "p" * 4000})
        path = _write(tmp_path, name, padded + b" " * MAX_RECORD_BYTES)
    elif case == "symlink":
        target = _write(tmp_path, "target", good)
        path = tmp_path / name
        path.symlink_to(target)
    elif case == "fifo":
        path = tmp_path / name
        os.mkfifo(path)
    else:
        path = tmp_path / name
        path.mkdir()
    with caplog.at_level(logging.WARNING, logger="bastion.hub.registry"):
        assert read_record(path) is None
    assert expected_log in caplog.text
    assert path.name in caplog.text


def test_a_file_of_another_user_is_skipped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    if os.geteuid() != 0:
        pytest.skip("changing a file's owner needs root")
    name, good = valid_bytes()
    path = _write(tmp_path, name, good)
    os.chown(path, 4242, -1)
    with caplog.at_level(logging.WARNING, logger="bastion.hub.registry"):
        assert read_record(path) is None
    assert "owned by another user" in caplog.text


def test_a_missing_file_is_no_record_and_no_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        assert read_record(tmp_path / "gone.json") is None
    assert caplog.text == ""
