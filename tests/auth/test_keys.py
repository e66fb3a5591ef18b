"""API keys (AU-5) in a real SQLite file: format, keyed hash, exact comparison, expiry,
rotation overlap, revocation seen at once by another open store, file modes, bounds."""

from __future__ import annotations

import os
import re
import sqlite3
import stat
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from bastion.auth import KeyStore, KeyStoreError, NoSuchKey, Unauthenticated
from bastion.auth.pepper import pepper_path
from tests.auth.support import FakeClock

T0 = 1_800_000_000.0


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "state" / "keys.db"


@pytest.fixture
def open_store(db: Path, clock: FakeClock) -> Iterator[Callable[..., KeyStore]]:
    """``KeyStore(db, clock=clock, **options)``, closed after the test (an unclosed SQLite
    connection is a ResourceWarning, an error under this suite's settings, on Python 3.13)."""
    opened: list[KeyStore] = []

    def open_one(**options: Any) -> KeyStore:
        store = KeyStore(db, clock=clock, **options)
        opened.append(store)
        return store

    yield open_one
    for store in opened:
        store.close()


def reason(store: KeyStore, presented: str, now: float) -> str:
    with pytest.raises(Unauthenticated) as caught:
        store.verify(presented, now)
    assert caught.value.presented
    return caught.value.reason


def test_au5_key_format_and_entropy(open_store: Callable[..., KeyStore]) -> None:
    store = open_store()
    record, key = store.create("ci", ["user"])
    match = re.fullmatch(r"bst_([0-9a-f]{12})_([A-Za-z0-9_-]{43})", key)
    assert match and match[1] == record.id
    assert len(match[2]) * 6 >= 256  # 32 random bytes, base64url
    assert store.verify(key, T0).name == "ci"
    others = {store.create(f"k{i}", ["user"])[1].split("_", 2)[2] for i in range(20)}
    assert len(others) == 20


def test_au5_only_a_keyed_hash_is_stored(
    db: Path, clock: FakeClock, open_store: Callable[..., KeyStore]
) -> None:
    store = open_store()
    _, key = store.create("ci", ["user"])
    store.close()
    secret = key.split("_", 2)[2]
    for path in db.parent.iterdir():
        data = path.read_bytes()
        assert secret.encode() not in data and key.encode() not in data, path
    with closing(sqlite3.connect(db)) as conn:
        (digest,) = conn.execute("SELECT digest FROM keys").fetchone()
    import hashlib

    assert digest != hashlib.sha256(key.encode()).digest()  # keyed, not a plain hash
    # Without the pepper the database alone cannot verify anything.
    pepper_path(db).rename(db.parent / "elsewhere")
    with pytest.raises(KeyStoreError, match="pepper"):
        KeyStore(db, clock=clock)


def test_au5_files_are_private(db: Path, open_store: Callable[..., KeyStore]) -> None:
    open_store().create("ci", ["user"])
    assert stat.S_IMODE(db.parent.stat().st_mode) == 0o700
    for path in db.parent.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_au5_pepper_readable_by_others_is_refused(
    db: Path, clock: FakeClock, open_store: Callable[..., KeyStore]
) -> None:
    open_store().close()
    os.chmod(pepper_path(db), 0o644)
    with pytest.raises(KeyStoreError, match="chmod 600"):
        KeyStore(db, clock=clock)


def test_au5_only_the_exact_full_key_verifies(open_store: Callable[..., KeyStore]) -> None:
    """Full-value constant-time comparison: no truncation, prefix, case-folding match."""
    store = open_store()
    _, key = store.create("ci", ["user"])
    head, secret = key[:17], key[17:]
    variants = [
        key[:-1],
        key[:-8],
        key + "A",
        head + secret.swapcase(),
        key.upper(),
        head + secret[:-1] + ("A" if secret[-1] != "A" else "B"),
        head + "A" * 43,
        " " + key,
    ]
    for variant in variants:
        assert reason(store, variant, T0) in {"unknown", "malformed"}, variant
    assert reason(store, "bst_000000000000_" + secret, T0) == "unknown"
    assert store.verify(key, T0).name == "ci"


def test_au5_expiry(open_store: Callable[..., KeyStore]) -> None:
    store = open_store()
    _, key = store.create("ci", ["user"], expires_in=3600)
    assert store.verify(key, T0 + 3599)
    assert reason(store, key, T0 + 3600) == "expired"


def test_au5_rotation_overlap(clock: FakeClock, open_store: Callable[..., KeyStore]) -> None:
    store = open_store()
    old, old_key = store.create("ci", ["user", "ops"], expires_in=86400)
    clock.advance(100)
    new, new_key = store.rotate("ci", overlap=600)
    assert new.rotated_from == old.id and new.name == "ci" and new.roles == ("user", "ops")
    assert new.expires == clock.now + 86400  # same lifetime, from the rotation
    assert store.verify(old_key, clock.now + 599).id == old.id
    assert store.verify(new_key, clock.now + 599).id == new.id
    assert reason(store, old_key, clock.now + 600) == "rotated"
    assert store.verify(new_key, clock.now + 600).id == new.id
    assert store.get("ci").id == new.id  # the name now means the successor
    with pytest.raises(KeyStoreError, match="not current"):
        store.rotate(old.id, overlap=0)


def test_au5_revocation_is_seen_at_once_by_another_store(
    open_store: Callable[..., KeyStore],
) -> None:
    """The gateway and the CLI are separate processes on one file: no caching of records."""
    server = open_store()
    cli = open_store()
    _, key = cli.create("ci", ["user"])
    assert server.verify(key, T0).name == "ci"
    cli.revoke("ci")
    assert reason(server, key, T0) == "revoked"


def test_au5_a_key_just_verified_is_refused_at_once_after_any_change(
    db: Path, open_store: Callable[..., KeyStore]
) -> None:
    """Verify may reuse the record it read, never past a change: one by this store
    (rotate), one by another connection to the file (the CLI's revoke, a raw UPDATE)."""
    server = open_store()
    _, first = server.create("a", ["user"])
    _, second = server.create("b", ["user"])
    assert server.verify(first, T0).name == "a"  # read, and held
    server.rotate("a", overlap=0)
    assert reason(server, first, T0) == "rotated"
    assert server.verify(second, T0).name == "b"
    raw = sqlite3.connect(db, isolation_level=None)
    try:
        raw.execute("UPDATE keys SET roles = '[\"admin\"]' WHERE name = 'b'")
    finally:
        raw.close()
    assert server.verify(second, T0).roles == ("admin",)


def test_au5_revoke_by_name_ends_keys_still_in_overlap(open_store: Callable[..., KeyStore]) -> None:
    store = open_store()
    _, old_key = store.create("ci", ["user"])
    _, new_key = store.rotate("ci", overlap=3600)
    assert {k.name for k in store.revoke("ci")} == {"ci"}
    assert reason(store, old_key, T0) == "revoked"
    assert reason(store, new_key, T0) == "revoked"
    with pytest.raises(NoSuchKey):
        store.revoke("ci")


def test_revoke_by_id_leaves_the_others(open_store: Callable[..., KeyStore]) -> None:
    store = open_store()
    a, a_key = store.create("a", ["user"])
    _, b_key = store.create("b", ["user"])
    store.revoke(a.id)
    assert reason(store, a_key, T0) == "revoked"
    assert store.verify(b_key, T0).name == "b"


def test_unknown_key_carries_its_id_but_never_the_secret(
    open_store: Callable[..., KeyStore],
) -> None:
    store = open_store()
    presented = "bst_0123456789ab_" + "x" * 43
    with pytest.raises(Unauthenticated) as caught:
        store.verify(presented, T0)
    assert caught.value.credential_id == "apikey:0123456789ab"
    assert "x" * 10 not in repr(caught.value) + str(caught.value.credential_id)


def test_list_shows_no_secrets(open_store: Callable[..., KeyStore]) -> None:
    store = open_store()
    _, key = store.create("ci", ["user"])
    listed = store.list()
    assert [k.name for k in listed] == ["ci"]
    assert key.split("_", 2)[2] not in repr(listed)
    assert not hasattr(listed[0], "digest")


def test_last_used_is_recorded_at_most_once_a_minute(open_store: Callable[..., KeyStore]) -> None:
    store = open_store()
    _, key = store.create("ci", ["user"])
    store.verify(key, T0 + 5)
    store.verify(key, T0 + 30)
    assert store.get("ci").last_used == T0 + 5
    store.verify(key, T0 + 70)
    assert store.get("ci").last_used == T0 + 70


def test_bad_input_is_refused(open_store: Callable[..., KeyStore]) -> None:
    store = open_store(max_keys=2)
    for name in ("", "x" * 65, "-a", "a b", "é"):
        with pytest.raises(KeyStoreError):
            store.create(name, ["user"])
    with pytest.raises(KeyStoreError):
        store.create("ok", ["bad role"])
    with pytest.raises(KeyStoreError):
        store.create("ok", ["r"] * 33)
    with pytest.raises(KeyStoreError):
        store.create("ok", ["user"], expires_in=0)
    store.create("one", ["user"])
    with pytest.raises(KeyStoreError, match="exists"):
        store.create("one", ["user"])
    store.create("two", ["user"])
    with pytest.raises(KeyStoreError, match="live keys"):
        store.create("three", ["user"])


def test_break_glass_keys_need_a_short_expiry(open_store: Callable[..., KeyStore]) -> None:
    store = open_store()
    with pytest.raises(KeyStoreError, match="break-glass"):
        store.create("bg", ["admin"], break_glass=True)
    with pytest.raises(KeyStoreError, match="break-glass"):
        store.create("bg", ["admin"], break_glass=True, expires_in=7200, max_break_glass_ttl=3600)
    record, _ = store.create("bg", ["admin"], break_glass=True, expires_in=900)
    assert record.break_glass
    with pytest.raises(KeyStoreError, match="not rotated"):
        store.rotate("bg", overlap=0)


def test_az5_a_user_made_key_cannot_carry_the_local_role_or_a_hub_name(
    open_store: Callable[..., KeyStore],
) -> None:
    """``local`` is the local user's (the built-in policy allows it everything): only the
    key a gateway lends its hub may carry it (``reserved=True``)."""
    store = open_store()
    with pytest.raises(KeyStoreError, match="'local' is reserved"):
        store.create("mallory", ["dev", "local"])
    with pytest.raises(KeyStoreError, match="hub's keys"):
        store.create("hub-local-1-abcdef", ["dev"])
    assert [k.name for k in store.list()] == []
    hub, _ = store.create("hub-local-1-abcdef", ["local"], reserved=True)
    assert hub.roles == ("local",)
    with pytest.raises(KeyStoreError, match="not rotated"):
        store.rotate(hub.id, overlap=0)
