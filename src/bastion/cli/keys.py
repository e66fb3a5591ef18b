"""``bastion keys create | list | rotate | revoke``: manage API keys (AU-5) in the key database.

The default database is ``$XDG_STATE_HOME/bastion/keys.db`` (``~/.local/state/...``). A new
key is printed once, alone on the last line of output, so ``| tail -n1`` captures it; it is
never stored, and ``list`` shows no secret or hash. A running gateway sees every change on
its next request. Exit codes: 0 ok, 2 bad input or no such key, 78 unusable database.
"""

from __future__ import annotations

import datetime
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    import argparse

    from bastion.auth.keys import ApiKey, KeyStore

__all__ = [
    "default_keys_db_path",
    "run_keys",
    "run_keys_create",
    "run_keys_list",
    "run_keys_revoke",
    "run_keys_rotate",
]

EXIT_USAGE: Final = 2
EXIT_CONFIG: Final = 78
DEFAULT_OVERLAP: Final = "1h"
# Without the gateway's config at hand, the CLI applies the default auth.break_glass.max_ttl;
# the gateway checks the configured one again at every use.
DEFAULT_BREAK_GLASS_TTL: Final = "1h"


def default_keys_db_path() -> Path:
    from bastion._paths import keys_db

    return keys_db()


def run_keys(args: argparse.Namespace) -> int:
    """Dispatch ``bastion keys <command>``."""
    if args.keys_command == "create":
        return run_keys_create(
            args.db, args.name, args.role, args.expires, break_glass=args.break_glass
        )
    if args.keys_command == "list":
        return run_keys_list(args.db, as_json=args.json)
    if args.keys_command == "rotate":
        return run_keys_rotate(args.db, args.key, args.overlap)
    return run_keys_revoke(args.db, args.key)


def _fail(message: str, code: int = EXIT_USAGE) -> int:
    print(f"bastion: {message}", file=sys.stderr)
    return code


def _open(db: str | None) -> KeyStore:
    from bastion.auth.keys import KeyStore

    return KeyStore(Path(db) if db else default_keys_db_path())


def _when(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    moment = datetime.datetime.fromtimestamp(epoch, tz=datetime.UTC)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def _summary(action: str, key: ApiKey) -> None:
    kind = " (break-glass)" if key.break_glass else ""
    print(f"{action} key {key.id} for {key.name}{kind}")
    print(f"  roles:   {', '.join(key.roles) or '-'}")
    print(f"  expires: {_when(key.expires)}")
    print("The key is shown once; store it now:")


def run_keys_create(
    db: str | None, name: str, roles: list[str], expires: str | None, *, break_glass: bool
) -> int:
    from bastion.auth.duration import parse_duration
    from bastion.auth.keys import KeyStoreError

    try:
        expires_in = parse_duration(expires) if expires is not None else None
        limit = parse_duration(DEFAULT_BREAK_GLASS_TTL)
    except ValueError as exc:
        return _fail(f"--expires: {exc}")
    if break_glass and expires_in is None:
        return _fail(f"--break-glass needs --expires (at most {DEFAULT_BREAK_GLASS_TTL})")
    try:
        store = _open(db)
    except KeyStoreError as exc:
        return _fail(str(exc), EXIT_CONFIG)
    try:
        key, plaintext = store.create(
            name, roles, expires_in=expires_in, break_glass=break_glass, max_break_glass_ttl=limit
        )
    except KeyStoreError as exc:
        return _fail(str(exc))
    finally:
        store.close()
    _summary("created", key)
    print(plaintext)
    return 0


def run_keys_list(db: str | None, *, as_json: bool) -> int:
    import time

    import msgspec

    from bastion.auth.keys import KeyStoreError

    path = Path(db) if db else default_keys_db_path()
    if not path.is_file():
        return _fail(f"no key database at {path}", EXIT_USAGE)
    try:
        store = _open(db)
    except KeyStoreError as exc:
        return _fail(str(exc), EXIT_CONFIG)
    try:
        keys = store.list()
    finally:
        store.close()
    now = time.time()
    if as_json:
        rows = [{**msgspec.to_builtins(k), "state": k.state(now)} for k in keys]
        print(msgspec.json.encode(rows).decode())
        return 0
    print(f"{'ID':<12}  {'NAME':<20}  {'STATE':<8}  {'ROLES':<20}  {'EXPIRES':<20}  LAST USED")
    for k in keys:
        name = k.name + (" !" if k.break_glass else "")
        print(
            f"{k.id:<12}  {name:<20}  {k.state(now):<8}  {','.join(k.roles) or '-':<20}  "
            f"{_when(k.ends_at):<20}  {_when(k.last_used)}"
        )
    return 0


def run_keys_rotate(db: str | None, id_or_name: str, overlap: str | None) -> int:
    from bastion.auth.duration import parse_duration
    from bastion.auth.keys import KeyStoreError

    try:
        seconds = parse_duration(overlap or DEFAULT_OVERLAP)
    except ValueError as exc:
        return _fail(f"--overlap: {exc}")
    try:
        store = _open(db)
    except KeyStoreError as exc:
        return _fail(str(exc), EXIT_CONFIG)
    try:
        key, plaintext = store.rotate(id_or_name, overlap=seconds)
    except KeyStoreError as exc:
        return _fail(str(exc))
    finally:
        store.close()
    print(f"the old key {key.rotated_from} stays valid for {overlap or DEFAULT_OVERLAP}")
    _summary("rotated: new", key)
    print(plaintext)
    return 0


def run_keys_revoke(db: str | None, id_or_name: str) -> int:
    from bastion.auth.keys import KeyStoreError

    try:
        store = _open(db)
    except KeyStoreError as exc:
        return _fail(str(exc), EXIT_CONFIG)
    try:
        revoked = store.revoke(id_or_name)
    except KeyStoreError as exc:
        return _fail(str(exc))
    finally:
        store.close()
    for key in revoked:
        print(f"revoked key {key.id} ({key.name})")
    return 0
