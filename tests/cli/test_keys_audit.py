"""``bastion keys create | rotate | revoke`` leave an ``admin`` record in the gateway's audit
log, as the admin API does (AD-1), with real processes: a shell user can no longer mint an
admin key without a trace. A key that grants access is never made unaudited (a tampered log,
another user's log, a record that cannot be committed: exit 78, no key, nothing shown); a
revocation always takes effect, and says so when it could not be recorded (exit 74)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from bastion.audit import AuditRecord, AuditStore
from bastion.auth import KeyStore, Unauthenticated
from bastion.auth.local import local_principal
from bastion.cli import main
from tests.cli.test_serve import call
from tests.cli.test_stop_signals import audited
from tests.support import BASTION, OTHER_UID, free_port, stop_process, wait_for_port

LOCAL = local_principal().id  # the effective uid's name, as the CLI names it


def keys(*args: str, state: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "XDG_STATE_HOME": str(state)}
    return subprocess.run(
        [str(BASTION), "keys", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def listed(state: Path) -> list[dict[str, Any]]:
    done = keys("list", "--json", state=state)
    assert done.returncode == 0, done.stderr
    rows: list[dict[str, Any]] = json.loads(done.stdout)
    return rows


def admin_records(db: Path) -> list[dict[str, Any]]:
    return [r for r in audited(db) if r["kind"] == "admin"]


def test_create_rotate_revoke_are_audited_as_the_admin_api_does_AD1(tmp_path: Path) -> None:
    made = keys("create", "--name", "ci", "--role", "user", "--role", "ops", "--expires", "30d",
                state=tmp_path)  # fmt: skip
    assert made.returncode == 0, made.stderr
    first = made.stdout.splitlines()[-1]
    rotated = keys("rotate", "ci", "--overlap", "10m", state=tmp_path)
    assert rotated.returncode == 0, rotated.stderr
    second = rotated.stdout.splitlines()[-1]
    glass = keys("create", "--name", "oncall", "--role", "admin", "--break-glass",
                 "--expires", "15m", state=tmp_path)  # fmt: skip
    assert glass.returncode == 0, glass.stderr
    revoked = keys("revoke", "ci", state=tmp_path)
    assert revoked.returncode == 0, revoked.stderr

    db = tmp_path / "bastion" / "audit.db"  # the gateway's default under $XDG_STATE_HOME
    create, rotate, create_glass, revoke = admin_records(db)
    old, new = (key.split("_")[1] for key in (first, second))
    for record in (create, rotate, create_glass, revoke):
        assert record["principal"] == record["credential_id"] == LOCAL
        assert (record["decision"], record["outcome"]) == ("allow", "ok")
    assert (create["method"], create["target"]) == ("keys.create", old)
    made_key = create["detail"]["key"]
    assert made_key["name"] == "ci" and made_key["roles"] == ["user", "ops"]
    assert abs(made_key["expiresAt"] - time.time() - 30 * 86400) < 60
    assert made_key["breakGlass"] is False and "breakGlass" not in create["detail"]
    assert (rotate["method"], rotate["target"]) == ("keys.rotate", new)
    assert rotate["detail"]["rotatedFrom"] == old and rotate["detail"]["overlapSeconds"] == 600
    assert rotate["detail"]["key"]["roles"] == ["user", "ops"]
    assert create_glass["method"] == "keys.create"
    # The new key's flag, not a break-glass use (that is the top-level ``breakGlass``).
    assert create_glass["detail"]["key"]["breakGlass"] is True
    assert "breakGlass" not in create_glass["detail"]
    assert create_glass["detail"]["key"]["roles"] == ["admin"]
    assert (revoke["method"], revoke["target"]) == ("keys.revoke", "ci")
    assert revoke["detail"]["count"] == 2
    assert {key["id"] for key in revoke["detail"]["revoked"]} == {old, new}
    # No secret anywhere in the log, the file's bytes included (WAL too).
    stored = b"".join(p.read_bytes() for p in db.parent.glob("audit.db*"))
    export = json.dumps(audited(db))
    for key in (first, second, glass.stdout.splitlines()[-1]):
        secret = key.split("_", 2)[2]
        assert secret not in export and secret.encode() not in stored


def gateway_log(db: Path) -> None:
    """An audit log a gateway has been writing (one request record in it)."""
    db.parent.mkdir(mode=0o700, exist_ok=True)
    store = AuditStore.open(db)
    try:
        store.append([AuditRecord(time=time.time(), method="tools/call", target="echo")])
    finally:
        store.close()


def truncate(db: Path) -> None:
    """Hide the last record, as someone covering a trace would (head and records disagree)."""
    with sqlite3.connect(db) as conn:
        conn.execute("DROP TRIGGER records_append_only_d")
        conn.execute("DELETE FROM records WHERE seq = (SELECT max(seq) FROM records)")


def give_away(db: Path) -> None:
    """The log and its directory become another user's (the gateway's, say)."""
    if os.geteuid() != 0:
        pytest.skip("giving the audit log to another user needs root")
    for path in (db.parent, *db.parent.iterdir()):
        os.chown(path, OTHER_UID, OTHER_UID)


Spoil = Callable[[Path], None]
UNUSABLE: dict[str, Spoil] = {"tampered": truncate, "another user's": give_away}


def spoilt_log(tmp_path: Path, spoil: Spoil) -> tuple[str, ...]:
    """A gateway's log, spoilt; the options that name it. The tampered one is the default
    log; another user's has a directory of its own (the key database stays ours)."""
    if spoil is truncate:
        gateway_log(tmp_path / "bastion" / "audit.db")
        truncate(tmp_path / "bastion" / "audit.db")
        return ()
    db = tmp_path / "audit" / "audit.db"
    gateway_log(db)
    give_away(db)
    return ("--audit-db", str(db))


@pytest.mark.parametrize("spoil", UNUSABLE.values(), ids=UNUSABLE.keys())
def test_no_key_is_made_or_rotated_when_the_audit_log_cannot_take_it_AD1(
    tmp_path: Path, spoil: Spoil
) -> None:
    with KeyStore(tmp_path / "bastion" / "keys.db") as store:  # made before: not audited here
        store.create("ci", ["user"])
    log = spoilt_log(tmp_path, spoil)
    for refused in (
        keys("create", "--name", "root", "--role", "admin", *log, state=tmp_path),
        keys("rotate", "ci", *log, state=tmp_path),
    ):
        assert refused.returncode == 78, refused.stdout + refused.stderr
        assert "bst_" not in refused.stdout
        assert len(refused.stderr.strip().splitlines()) == 1
        assert "audit log" in refused.stderr and "Traceback" not in refused.stderr
    rows = listed(tmp_path)
    assert [(r["name"], r["state"], r["not_after"]) for r in rows] == [("ci", "active", None)]


def test_no_log_is_made_in_another_users_directory_AD1(tmp_path: Path) -> None:
    """A log that root made (0600, root's) would lock the gateway's user out of its log."""
    if os.geteuid() != 0:
        pytest.skip("giving a directory to another user needs root")
    theirs = tmp_path / "gateway"
    theirs.mkdir()
    os.chown(theirs, OTHER_UID, OTHER_UID)
    db = theirs / "audit.db"
    refused = keys("create", "--name", "ci", "--role", "user", "--audit-db", str(db),
                   state=tmp_path)  # fmt: skip
    assert refused.returncode == 78, refused.stderr
    assert f"uid {OTHER_UID}" in refused.stderr and "bst_" not in refused.stdout
    assert list(theirs.iterdir()) == []
    assert "no key database" in keys("list", state=tmp_path).stderr  # nothing was touched


@pytest.mark.parametrize("spoil", UNUSABLE.values(), ids=UNUSABLE.keys())
def test_revoke_takes_effect_though_the_audit_log_cannot_take_it_AD1(
    tmp_path: Path, spoil: Spoil
) -> None:
    with KeyStore(tmp_path / "bastion" / "keys.db") as gateway:
        key = gateway.create("ci", ["user"])[1]
        log = spoilt_log(tmp_path, spoil)
        assert gateway.verify(key, time.time()).name == "ci"
        revoked = keys("revoke", "ci", *log, state=tmp_path)
        assert revoked.returncode == 74, revoked.stdout + revoked.stderr
        assert "revoked key" in revoked.stdout
        assert "warning" in revoked.stderr and "not audited" in revoked.stderr
        assert "audit log" in revoked.stderr
        with pytest.raises(Unauthenticated, match="revoked"):
            gateway.verify(key, time.time())
    assert [r["state"] for r in listed(tmp_path)] == ["revoked"]


def test_a_change_whose_record_is_not_committed_is_undone_AD1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The log opened, but the record's commit failed (a full disk): the new key is deleted
    without ever being shown, and a rotated key is the current one again."""
    from bastion.audit.store import AuditStore

    keys_db = tmp_path / "keys.db"
    where = ("--db", str(keys_db), "--audit-db", str(tmp_path / "audit.db"))
    assert main(["keys", "create", "--name", "ci", "--role", "user", *where]) == 0
    capsys.readouterr()

    def full_disk(store: AuditStore, bodies: object) -> int:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(AuditStore, "append_encoded", full_disk)
    assert main(["keys", "create", "--name", "root", "--role", "admin", *where]) == 78
    assert main(["keys", "rotate", "ci", *where]) == 78
    out, err = capsys.readouterr()
    assert "bst_" not in out
    assert err.count("disk is full") == 2 and "Traceback" not in err
    with KeyStore(keys_db) as store:
        rows = [(key.name, key.state(time.time()), key.not_after) for key in store.list()]
    assert rows == [("ci", "active", None)]
    monkeypatch.undo()
    assert main(["keys", "rotate", "ci", *where]) == 0  # the old key can be rotated again


@pytest.mark.e2e
def test_a_gateway_and_the_cli_writing_one_log_leave_it_verifiable_AD1(tmp_path: Path) -> None:
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path)}
    port = free_port()
    argv = [str(BASTION), "serve", "--port", str(port), "--no-register"]
    gateway = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    answered: list[int] = []
    stop = threading.Event()

    def traffic() -> None:
        while not stop.is_set():
            answer = call(f"http://127.0.0.1:{port}/mcp", "echo", {"text": "shared log"})
            answered.append(answer.status_code)

    try:
        wait_for_port(port)
        ready = time.monotonic() + 60
        while httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code != 200:
            assert time.monotonic() < ready, "the gateway's upstream never became ready"
            time.sleep(0.05)
        caller = threading.Thread(target=traffic)
        caller.start()
        try:
            changes = [
                ("create", "--name", "one", "--role", "user"),
                ("create", "--name", "two", "--role", "admin"),
                ("rotate", "one"),
                ("revoke", "two"),
            ]
            for change in changes:
                done = keys(*change, state=tmp_path)
                assert done.returncode == 0, done.stderr
        finally:
            stop.set()
            caller.join()
    finally:
        stop_process(gateway, grace=15)
    assert answered and set(answered) == {200}
    records = audited(tmp_path / "bastion" / "audit.db")  # verifies it first
    admin = [i for i, r in enumerate(records) if r["kind"] == "admin"]
    methods = [records[i]["method"] for i in admin]
    assert methods == ["keys.create", "keys.create", "keys.rotate", "keys.revoke"]
    calls = [i for i, r in enumerate(records) if r.get("method") == "tools/call"]
    assert len(calls) == len(answered)
    assert any(admin[0] < i < admin[-1] for i in calls)  # the two writers took turns
