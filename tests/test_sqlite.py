"""``open_private_db`` refuses a database that someone else may rewrite (AU-5, AZ-6): whoever
may write the API-key database can make a key admin, un-revoke it or extend its expiry
without the pepper, so the file, its ``-wal``/``-shm`` and its directory must be writable by
this user (or root) alone. The audit and pin databases open through the same helper."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bastion._sqlite import UnsafeFileError, open_private_db

NOBODY = 65534


def fresh(tmp_path: Path) -> Path:
    path = tmp_path / "state" / "keys.db"
    open_private_db(path, busy_timeout=5).close()
    return path


def test_au5_a_new_database_is_private_and_opens_again(tmp_path: Path) -> None:
    path = fresh(tmp_path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    open_private_db(path, busy_timeout=5).close()


@pytest.mark.parametrize("mode", [0o666, 0o606, 0o620])
def test_au5_a_database_file_others_or_group_may_write_is_refused(
    tmp_path: Path, mode: int
) -> None:
    path = fresh(tmp_path)
    path.chmod(mode)
    with pytest.raises(UnsafeFileError) as caught:
        open_private_db(path, busy_timeout=5)
    assert str(path) in str(caught.value)
    assert f"chmod go-w {path}" in str(caught.value)


@pytest.mark.parametrize("mode", [0o777, 0o1777, 0o770])
def test_au5_a_directory_others_or_group_may_write_is_refused(tmp_path: Path, mode: int) -> None:
    """Sticky or not: anyone who may create files there may plant the ``-wal`` SQLite reads."""
    path = fresh(tmp_path)
    path.parent.chmod(mode)
    with pytest.raises(UnsafeFileError) as caught:
        open_private_db(path, busy_timeout=5)
    assert f"chmod go-w {path.parent}" in str(caught.value)


def test_au5_a_new_database_in_an_open_directory_is_not_created(tmp_path: Path) -> None:
    folder = tmp_path / "shared"
    folder.mkdir(mode=0o777)
    folder.chmod(0o777)
    with pytest.raises(UnsafeFileError):
        open_private_db(folder / "keys.db", busy_timeout=5)
    assert not (folder / "keys.db").exists()


@pytest.mark.parametrize("suffix", ["-wal", "-shm"])
def test_au5_a_writable_wal_or_shm_is_refused(tmp_path: Path, suffix: str) -> None:
    path = fresh(tmp_path)
    side = path.with_name(path.name + suffix)
    side.touch()
    side.chmod(0o666)
    with pytest.raises(UnsafeFileError) as caught:
        open_private_db(path, busy_timeout=5)
    assert f"chmod go-w {side}" in str(caught.value)


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
@pytest.mark.parametrize("which", ["file", "directory"])
def test_au5_a_database_owned_by_another_user_is_refused(tmp_path: Path, which: str) -> None:
    path = fresh(tmp_path)
    target = path if which == "file" else path.parent
    os.chown(target, NOBODY, -1)
    with pytest.raises(UnsafeFileError) as caught:
        open_private_db(path, busy_timeout=5)
    assert f"chown {os.geteuid()} {target}" in str(caught.value)


def test_au5_memory_databases_are_not_checked() -> None:
    open_private_db(Path(":memory:"), busy_timeout=5).close()
