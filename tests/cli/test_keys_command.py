"""``bastion keys`` as a real process (AU-5): the key shown once on the last line, list
without secrets, rotate with overlap, revoke seen by a store that was already open."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from bastion.auth import KeyStore, Unauthenticated
from tests.support import BASTION


def keys(*args: str, state: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "XDG_STATE_HOME": str(state)}
    return subprocess.run(
        [str(BASTION), "keys", *args],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def test_au5_create_prints_the_key_alone_on_the_last_line(tmp_path: Path) -> None:
    done = keys(
        "create",
        "--name",
        "ci",
        "--role",
        "user",
        "--role",
        "ops",
        "--expires",
        "30d",
        state=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    key = lines[-1]
    assert key.startswith("bst_") and " " not in key
    assert key not in "\n".join(lines[:-1])
    db = tmp_path / "bastion" / "keys.db"  # the default under $XDG_STATE_HOME
    with KeyStore(db) as store:
        record = store.verify(key, time.time())
    assert record.roles == ("user", "ops")
    assert record.expires is not None and abs(record.expires - time.time() - 30 * 86400) < 60


def test_au5_list_shows_no_secret(tmp_path: Path) -> None:
    key = keys("create", "--name", "ci", "--role", "user", state=tmp_path).stdout.splitlines()[-1]
    table = keys("list", state=tmp_path)
    as_json = keys("list", "--json", state=tmp_path)
    assert table.returncode == as_json.returncode == 0
    secret = key.split("_", 2)[2]
    assert secret not in table.stdout and secret not in as_json.stdout
    rows = json.loads(as_json.stdout)
    assert [(r["name"], r["state"], r["roles"]) for r in rows] == [("ci", "active", ["user"])]
    assert "digest" not in rows[0]


def test_au5_rotate_and_revoke(tmp_path: Path) -> None:
    old = keys("create", "--name", "ci", "--role", "user", state=tmp_path).stdout.splitlines()[-1]
    # a running gateway's store
    with KeyStore(tmp_path / "bastion" / "keys.db") as server:
        rotated = keys("rotate", "ci", "--overlap", "10m", state=tmp_path)
        assert rotated.returncode == 0, rotated.stderr
        new = rotated.stdout.splitlines()[-1]
        assert new.startswith("bst_") and new != old
        now = time.time()
        assert server.verify(old, now).name == server.verify(new, now).name == "ci"
        assert server.verify(old, now + 590).name == "ci"  # inside the 10-minute overlap
        with pytest.raises(Unauthenticated, match="rotated"):
            server.verify(old, now + 601)
        revoked = keys("revoke", "ci", state=tmp_path)
        assert revoked.returncode == 0 and revoked.stdout.count("revoked key") == 2
        with pytest.raises(Unauthenticated, match="revoked"):
            server.verify(new, time.time())


@pytest.mark.parametrize(
    "args",
    [
        ("create", "--name", "x", "--role", "r", "--expires", "5y"),
        ("create", "--name", "x", "--role", "r", "--break-glass"),
        ("create", "--name", "x", "--role", "r", "--break-glass", "--expires", "2h"),
        ("create", "--name", "bad name", "--role", "r"),
        ("create", "--name", "x"),
        ("rotate", "nosuch"),
        ("revoke", "nosuch"),
        ("rotate", "x", "--overlap", "soon"),
    ],
)
def test_bad_input_exits_2_with_a_message(tmp_path: Path, args: tuple[str, ...]) -> None:
    done = keys(*args, state=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip() and "Traceback" not in done.stderr
    assert "bst_" not in done.stdout


def test_break_glass_key_with_short_expiry(tmp_path: Path) -> None:
    done = keys(
        "create",
        "--name",
        "bg",
        "--role",
        "admin",
        "--break-glass",
        "--expires",
        "15m",
        state=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "break-glass" in done.stdout
    assert done.stdout.splitlines()[-1].startswith("bst_")


def test_au5_list_refuses_a_database_every_user_may_write(tmp_path: Path) -> None:
    """AU-5, AZ-6: any local user who can write the key database can make a key admin."""
    db = tmp_path / "keys.db"
    made = keys("create", "--name", "ci", "--role", "user", "--db", str(db), state=tmp_path)
    assert made.returncode == 0, made.stderr
    db.chmod(0o666)
    done = keys("list", "--db", str(db), state=tmp_path)
    assert done.returncode != 0
    assert f"chmod go-w {db}" in done.stderr
    assert "Traceback" not in done.stderr
