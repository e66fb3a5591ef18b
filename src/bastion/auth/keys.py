"""API keys (AU-5): ``bst_<id>_<secret>``, stored as an HMAC-SHA256 of the whole key.

``<id>`` is 12 random hex digits, not secret, used to find the record; ``<secret>`` is 32
random bytes (256 bits, URL-safe base64). The database (SQLite, WAL, 0600 in a 0700
directory, refused if anyone else may write it or its directory) holds only
``HMAC(pepper, key)``; the pepper lives in its own 0600 file. Verify
looks the id up and compares the full digest with ``hmac.compare_digest``: no prefix,
truncated or case-folded match can pass. A verify reuses the record it read last time only
while no other connection has committed since (``CommitWatch``'s one read of the WAL index,
else SQLite's ``data_version``), and this store's own writes drop what it holds; so a
revocation by another process (``bastion keys revoke``) still takes effect on the next
request.
"""

from __future__ import annotations

import builtins
import hmac
import re
import secrets
import sqlite3
import threading
import time
from pathlib import Path
from typing import Final, Literal

import msgspec

from bastion._sqlite import UnsafeFileError
from bastion._sqlite_commits import CommitWatch
from bastion._types import Clock
from bastion.auth._keydb import (
    SELECT_ALL,
    SELECT_BY_ID,
    SELECT_CURRENT,
    SELECT_FOR_VERIFY,
    Transaction,
    open_db,
    undo_grant,
)
from bastion.auth.pepper import PepperError, ensure_private_dir, load_or_create_pepper
from bastion.auth.principal import Unauthenticated
from bastion.auth.roles import NAME_PATTERN, RESERVED_ROLES, reserved_refusal
from bastion.auth.settings import MAX_BREAK_GLASS_TTL

__all__ = ["KEY_PREFIX", "MAX_KEYS", "ApiKey", "KeyState", "KeyStore", "KeyStoreError", "NoSuchKey"]

KEY_PREFIX: Final = "bst_"
MAX_KEYS: Final = 100_000  # live (unrevoked) keys; a bound on the table, not a product limit
MAX_ROLES: Final = 32
MAX_VERIFIED: Final = 10_000  # verify rows kept between queries (cleared when full)
TOUCH_EVERY: Final = 60.0  # last_used is written at most once a minute per key: reads stay reads
_ID: Final = re.compile(r"[0-9a-f]{12}")
_KEY: Final = re.compile(r"bst_(?P<id>[0-9a-f]{12})_[A-Za-z0-9_-]{43}")
_NAME: Final = re.compile(NAME_PATTERN)

KeyState = Literal["active", "expired", "revoked", "rotated"]


class KeyStoreError(Exception):
    """A key operation was refused (bad name or role, limit reached, unusable store)."""


class NoSuchKey(KeyStoreError):
    """No key has that id, or no current key has that name."""


class ApiKey(msgspec.Struct, frozen=True, kw_only=True):
    """One key's record; never holds the secret or its digest. Times are epoch seconds.
    ``not_after`` is set when the key was rotated: it stays valid until then."""

    id: str
    name: str
    roles: tuple[str, ...]
    created: float
    expires: float | None = None
    revoked_at: float | None = None
    rotated_from: str | None = None
    not_after: float | None = None
    last_used: float | None = None
    break_glass: bool = False

    def state(self, now: float) -> KeyState:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires is not None and now >= self.expires:
            return "expired"
        if self.not_after is not None and now >= self.not_after:
            return "rotated"
        return "active"

    @property
    def ends_at(self) -> float | None:
        """The earlier of expiry and the end of a rotation overlap."""
        return _earliest(self.expires, self.not_after)


class KeyStore:
    """The key database at ``path``; safe to share between this process's threads and with
    other processes (the CLI) writing the same file."""

    def __init__(self, path: Path, *, clock: Clock = time.time, max_keys: int = MAX_KEYS) -> None:
        ensure_private_dir(path.parent)
        self._path = path
        self._clock = clock
        self._max_keys = max_keys
        self._lock = threading.Lock()
        try:
            self._conn = open_db(path)
        except UnsafeFileError as exc:
            raise KeyStoreError(f"refusing the key database {path}: {exc}") from exc
        except (sqlite3.Error, OSError) as exc:
            raise KeyStoreError(f"cannot open the key database {path}: {exc}") from exc
        try:
            empty = self._conn.execute("SELECT NOT EXISTS (SELECT 1 FROM keys)").fetchone()[0]
            self._pepper = load_or_create_pepper(path, create=bool(empty))
        except (sqlite3.Error, PepperError) as exc:
            self._conn.close()
            raise KeyStoreError(str(exc)) from exc
        self._dummy = self._digest(KEY_PREFIX + "0" * 56)
        # (record, stored digest) read by verify, valid while ``PRAGMA data_version`` stays
        # ``_version``; ``_commits`` says so without asking SQLite when nothing was written.
        self._verified: dict[str, tuple[ApiKey, bytes]] = {}
        self._version: object = None
        self._commits = CommitWatch(path)

    def close(self) -> None:
        with self._lock:
            self._commits.close()
            self._conn.close()

    def __enter__(self) -> KeyStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def create(
        self,
        name: str,
        roles: tuple[str, ...] | list[str],
        *,
        expires_in: float | None = None,
        break_glass: bool = False,
        max_break_glass_ttl: float = MAX_BREAK_GLASS_TTL,
        reserved: bool = False,
        expires_by: float | None = None,
    ) -> tuple[ApiKey, str]:
        """A new key: its record and plaintext (never stored); it ends by ``expires_by`` if set.

        Raises:
            KeyStoreError: bad name or roles, a reserved role or name (only ``reserved``, the
                hub's key, may), a current key has this name, a break-glass key without an
                expiry or beyond ``max_break_glass_ttl``, or ``MAX_KEYS`` live keys exist.
        """
        roles = _check_roles(roles)
        if not _NAME.fullmatch(name):
            raise KeyStoreError("name: use 1 to 64 of A-Z a-z 0-9 _ . @ : - (starting alnum)")
        if not reserved and (refusal := reserved_refusal(name, roles)) is not None:
            raise KeyStoreError(refusal)
        if expires_in is not None and expires_in <= 0:
            raise KeyStoreError("expiry must be in the future")
        if break_glass and (expires_in is None or expires_in > max_break_glass_ttl):
            raise KeyStoreError(
                f"a break-glass key needs an expiry of at most {int(max_break_glass_ttl)}s"
            )
        with self._lock, self._write() as conn:
            live = conn.execute("SELECT count(*) FROM keys WHERE revoked_at IS NULL").fetchone()
            if live[0] >= self._max_keys:
                raise KeyStoreError(f"{self._max_keys} live keys exist; revoke some first")
            if conn.execute(SELECT_CURRENT, (name,)).fetchone() is not None:
                raise KeyStoreError(f"a key named {name!r} exists; rotate or revoke it")
            now = self._clock()
            expires = _earliest(None if expires_in is None else now + expires_in, expires_by)
            return self._insert(
                conn,
                name=name,
                roles=roles,
                now=now,
                expires=expires,
                rotated_from=None,
                break_glass=break_glass,
            )

    def list(self) -> builtins.list[ApiKey]:
        """Every record, oldest first (revoked and rotated ones too)."""
        with self._lock:
            rows = self._conn.execute(SELECT_ALL)
            return [_record(r) for r in rows.fetchall()]

    def get(self, id_or_name: str) -> ApiKey:
        """The key with this id, else the current key with this name.

        Raises:
            NoSuchKey: neither exists.
        """
        with self._lock:
            return _record(_resolve(self._conn, id_or_name))

    def rotate(
        self, id_or_name: str, *, overlap: float, expires_by: float | None = None
    ) -> tuple[ApiKey, str]:
        """A successor with the same name, roles and lifetime (from now; it ends by ``expires_by``
        if set); the old key stays valid for ``overlap`` seconds (0: ends now).

        Raises:
            NoSuchKey: no such key. KeyStoreError: the key is revoked, expired, already
                rotated, or a break-glass key (create a new one instead).
        """
        if overlap < 0:
            raise KeyStoreError("overlap must not be negative")
        with self._lock, self._write() as conn:
            old = _record(_resolve(conn, id_or_name))
            now = self._clock()
            state = old.state(now)
            if state != "active" or old.not_after is not None:
                raise KeyStoreError(f"key {old.id} is {state}, not current; cannot rotate it")
            if old.break_glass or not RESERVED_ROLES.isdisjoint(old.roles):  # the hub's key
                raise KeyStoreError("break-glass and hub keys are not rotated; make a new one")
            conn.execute("UPDATE keys SET not_after = ? WHERE id = ?", (now + overlap, old.id))
            lifetime = None if old.expires is None else old.expires - old.created
            expires = _earliest(None if lifetime is None else now + lifetime, expires_by)
            return self._insert(
                conn,
                name=old.name,
                roles=old.roles,
                now=now,
                expires=expires,
                rotated_from=old.id,
                break_glass=False,
            )

    def revoke(self, id_or_name: str) -> builtins.list[ApiKey]:
        """Revoke the key with this id, or every unrevoked key with this name (the current
        one and any still in a rotation overlap). Returns what was revoked.

        Raises:
            NoSuchKey: nothing unrevoked matches.
        """
        with self._lock, self._write() as conn:
            ids = [r[0] for r in conn.execute(
                "SELECT id FROM keys WHERE revoked_at IS NULL AND (id = ? OR"
                " (name = ? AND NOT EXISTS (SELECT 1 FROM keys WHERE id = ?)))",
                (id_or_name, id_or_name, id_or_name),
            )]  # fmt: skip
            if not ids:
                raise NoSuchKey(f"no unrevoked key with id or name {id_or_name!r}")
            now = self._clock()
            revoked = []
            for key_id in ids:
                conn.execute("UPDATE keys SET revoked_at = ? WHERE id = ?", (now, key_id))
                revoked.append(_record(conn.execute(SELECT_BY_ID, (key_id,)).fetchone()))
            return revoked

    def undo(self, key: ApiKey) -> None:
        """Take back the ``create`` or ``rotate`` that returned ``key``, before its secret was
        shown: delete it, and make the key it succeeded current again (``undo_grant``)."""
        with self._lock, self._write() as conn:
            undo_grant(conn, key.id, key.rotated_from)

    def verify(self, presented: str, now: float, *, break_glass: bool = True) -> ApiKey:
        """The record of the key ``presented``, if it is exactly a live key; with
        ``break_glass=False`` a break-glass key is refused too (before its use is recorded).

        Raises:
            Unauthenticated: reason ``malformed``, ``unknown`` (no such id, or the secret
                differs), ``revoked``, ``expired``, ``rotated`` (overlap over) or
                ``break-glass-disabled``; ``credential_id`` is ``apikey:<id>`` once the id is
                well-formed.
        """
        match = _KEY.fullmatch(presented)
        if match is None:
            raise Unauthenticated("malformed", presented=True)
        key_id = match["id"]
        credential = f"apikey:{key_id}"
        digest = self._digest(presented)
        with self._lock:
            found = self._for_verify(key_id)
            # Compare even for an unknown id, so both refusals cost the same.
            stored = found[1] if found is not None else self._dummy
            if not hmac.compare_digest(digest, stored) or found is None:
                raise Unauthenticated("unknown", presented=True, credential_id=credential)
            key = found[0]
            state = key.state(now)
            if state != "active":
                raise Unauthenticated(state, presented=True, credential_id=credential)
            if key.break_glass and not break_glass:
                raise Unauthenticated(
                    "break-glass-disabled", presented=True, credential_id=credential
                )
            if key.last_used is None or now - key.last_used >= TOUCH_EVERY:
                self._touch(key_id, now)
        return key

    def _for_verify(self, key_id: str) -> tuple[ApiKey, bytes] | None:
        """The key's record and stored digest, from what this store read before if no other
        connection has committed since (``CommitWatch``'s header read, else one pragma,
        instead of a query); caller holds the lock."""
        if not self._commits.unchanged():
            self._commits.mark()
            version = self._conn.execute("PRAGMA data_version").fetchone()[0]
            if version != self._version:
                self._verified.clear()
                self._version = version
        found = self._verified.get(key_id)
        if found is None:
            row = self._conn.execute(SELECT_FOR_VERIFY, (key_id,)).fetchone()
            if row is None:
                return None
            found = (_record(row[:-1]), bytes(row[-1]))
            if len(self._verified) >= MAX_VERIFIED:
                self._verified.clear()
            self._verified[key_id] = found
        return found

    def _digest(self, key: str) -> bytes:
        return hmac.digest(self._pepper, key.encode("ascii"), "sha256")

    def _insert(
        self,
        conn: sqlite3.Connection,
        *,
        name: str,
        roles: tuple[str, ...],
        now: float,
        expires: float | None,
        rotated_from: str | None,
        break_glass: bool,
    ) -> tuple[ApiKey, str]:
        while True:
            key_id = secrets.token_hex(6)
            if conn.execute("SELECT 1 FROM keys WHERE id = ?", (key_id,)).fetchone() is None:
                break
        plaintext = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        conn.execute(
            "INSERT INTO keys (id, name, roles, digest, created, expires, rotated_from,"
            " break_glass) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (key_id, name, msgspec.json.encode(roles).decode(), self._digest(plaintext), now,
             expires, rotated_from, int(break_glass)),
        )  # fmt: skip
        row = conn.execute(SELECT_BY_ID, (key_id,)).fetchone()
        return _record(row), plaintext

    def _touch(self, key_id: str, now: float) -> None:
        # Best effort and never waiting: if the CLI holds the write lock, skip this minute.
        self._verified.pop(key_id, None)
        try:
            self._conn.execute("PRAGMA busy_timeout = 0")
            self._conn.execute("UPDATE keys SET last_used = ? WHERE id = ?", (now, key_id))
        except sqlite3.OperationalError:
            pass
        finally:
            self._conn.execute("PRAGMA busy_timeout = 5000")

    def _write(self) -> Transaction:
        self._verified.clear()  # this connection's own commits do not move data_version
        return Transaction(self._conn, KeyStoreError)


def _earliest(*times: float | None) -> float | None:
    return min((t for t in times if t is not None), default=None)


def _check_roles(roles: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    if len(roles) > MAX_ROLES:
        raise KeyStoreError(f"at most {MAX_ROLES} roles")
    for role in roles:
        if not _NAME.fullmatch(role):
            raise KeyStoreError(f"role {role[:64]!r}: use 1 to 64 of A-Z a-z 0-9 _ . @ : -")
    return tuple(dict.fromkeys(roles))


def _resolve(conn: sqlite3.Connection, id_or_name: str) -> tuple[object, ...]:
    if _ID.fullmatch(id_or_name):
        row = conn.execute(SELECT_BY_ID, (id_or_name,))
        if (found := row.fetchone()) is not None:
            return tuple(found)
    current = conn.execute(SELECT_CURRENT, (id_or_name,)).fetchone()
    if current is None:
        raise NoSuchKey(f"no key with id {id_or_name!r} and no current key with that name")
    return tuple(current)


_ROLES: Final = msgspec.json.Decoder(tuple[str, ...])


def _record(row: tuple[object, ...] | sqlite3.Row) -> ApiKey:
    key_id, name, roles, created, expires, revoked, rotated_from, not_after, used, glass = row
    return ApiKey(
        id=str(key_id),
        name=str(name),
        roles=_ROLES.decode(str(roles)),
        created=float(created),  # type: ignore[arg-type]
        expires=expires,  # type: ignore[arg-type]
        revoked_at=revoked,  # type: ignore[arg-type]
        rotated_from=rotated_from,  # type: ignore[arg-type]
        not_after=not_after,  # type: ignore[arg-type]
        last_used=used,  # type: ignore[arg-type]
        break_glass=bool(glass),
    )
