"""``bastion keys create | list | rotate | revoke``: manage API keys (AU-5) in the key database.

The default database is ``$XDG_STATE_HOME/bastion/keys.db`` (``~/.local/state/...``). A new
key is printed once, alone on the last line of output, so ``| tail -n1`` captures it; it is
never stored, and ``list`` shows no secret or hash. A running gateway sees every change on
its next request.

Every change is recorded in the gateway's audit log (``--audit-db``, default
``$XDG_STATE_HOME/bastion/audit.db``) as the admin API records it (AD-1; ``keys_audit``). A
change that grants access (create, rotate) never happens unaudited: the log is opened first,
so a log that fails the store's checks on open (tampered: its head or its unsigned records
do not match), one this user does not own, or one that cannot be written refuses the command
before the key database is touched; then the change is made and its record committed before
the key is printed. If that record cannot be committed, the change is undone (the new key
deleted, a rotated key current again) and the key is never shown. The undo, not a record
written first, because the record names the key the change creates, and a record written
before it could tell of a key that never came; and since the secret exists only in this
process until printed, even a failed undo leaves no key anyone holds. A revocation always
takes effect, first: the audit log comes after it, and if its record cannot be written the
revocation stands, a warning says why on stderr, and the exit code is 74.
Refused attempts (no such key, a name in use) change nothing and are not recorded.

Exit codes: 0 ok, 2 bad input or no such key, 74 revoked but not audited, 78 unusable key
database or audit log (create and rotate: nothing changed).
"""

from __future__ import annotations

import datetime
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable

    from bastion._types import JSONObject
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
EXIT_UNAUDITED: Final = 74  # EX_IOERR: revoked, but the audit log did not take the record
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
            args.db,
            args.audit_db,
            args.name,
            args.role,
            args.expires,
            break_glass=args.break_glass,
        )
    if args.keys_command == "list":
        return run_keys_list(args.db, as_json=args.json)
    if args.keys_command == "rotate":
        return run_keys_rotate(args.db, args.audit_db, args.key, args.overlap)
    return run_keys_revoke(args.db, args.audit_db, args.key)


def _fail(message: str, code: int = EXIT_USAGE) -> int:
    print(f"bastion: {message}", file=sys.stderr)
    return code


def _open(db: str | None) -> KeyStore:
    from bastion.auth.keys import KeyStore

    return KeyStore(Path(db) if db else default_keys_db_path())


def _audit_path(audit_db: str | None) -> Path:
    from bastion.cli.keys_audit import default_audit_db_path

    return Path(audit_db) if audit_db else default_audit_db_path()


def _audited_grant(
    db: str | None,
    audit_db: str | None,
    action: str,
    change: Callable[[KeyStore], tuple[ApiKey, str]],
    describe: Callable[[ApiKey], JSONObject],
) -> tuple[ApiKey, str] | int:
    """Run ``change`` (a create or rotate) as the module docstring says: the new key and its
    secret once its record is committed, else the exit code after saying why on stderr."""
    from bastion.auth.keys import KeyStoreError
    from bastion.cli.keys_audit import AuditTrailError, KeysAuditTrail

    try:
        with KeysAuditTrail(_audit_path(audit_db)) as trail:
            try:
                store = _open(db)
            except KeyStoreError as exc:
                return _fail(str(exc), EXIT_CONFIG)
            try:
                key, plaintext = change(store)
                try:
                    trail.write(action, key.id, describe(key))
                except AuditTrailError:
                    _undo(store, key)  # before the key is ever shown
                    raise
            except KeyStoreError as exc:
                return _fail(str(exc))
            finally:
                store.close()
    except AuditTrailError as exc:
        return _fail(f"{exc}; nothing was changed", EXIT_CONFIG)
    return key, plaintext


def _undo(store: KeyStore, key: ApiKey) -> None:
    import sqlite3

    from bastion.auth.keys import KeyStoreError

    try:
        store.undo(key)
    except (KeyStoreError, sqlite3.Error) as exc:
        print(
            f"bastion: warning: could not delete the new key {key.id} ({exc}); nobody holds "
            f"its secret, which was never shown, but revoke it: bastion keys revoke {key.id}",
            file=sys.stderr,
        )


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
    db: str | None,
    audit_db: str | None,
    name: str,
    roles: list[str],
    expires: str | None,
    *,
    break_glass: bool,
) -> int:
    from bastion.audit.admin_events import key_detail
    from bastion.auth.duration import parse_duration
    from bastion.cli.keys_audit import described

    try:
        expires_in = parse_duration(expires) if expires is not None else None
        limit = parse_duration(DEFAULT_BREAK_GLASS_TTL)
    except ValueError as exc:
        return _fail(f"--expires: {exc}")
    if break_glass and expires_in is None:
        return _fail(f"--break-glass needs --expires (at most {DEFAULT_BREAK_GLASS_TTL})")
    made = _audited_grant(
        db,
        audit_db,
        "keys.create",
        lambda store: store.create(
            name, roles, expires_in=expires_in, break_glass=break_glass, max_break_glass_ttl=limit
        ),
        lambda key: key_detail(described(key)),
    )
    if isinstance(made, int):
        return made
    key, plaintext = made
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


def run_keys_rotate(
    db: str | None, audit_db: str | None, id_or_name: str, overlap: str | None
) -> int:
    from bastion.audit.admin_events import rotation_detail
    from bastion.auth.duration import parse_duration
    from bastion.cli.keys_audit import described

    try:
        seconds = parse_duration(overlap or DEFAULT_OVERLAP)
    except ValueError as exc:
        return _fail(f"--overlap: {exc}")
    made = _audited_grant(
        db,
        audit_db,
        "keys.rotate",
        lambda store: store.rotate(id_or_name, overlap=seconds),
        lambda key: rotation_detail(described(key), key.rotated_from or id_or_name, seconds),
    )
    if isinstance(made, int):
        return made
    key, plaintext = made
    print(f"the old key {key.rotated_from} stays valid for {overlap or DEFAULT_OVERLAP}")
    _summary("rotated: new", key)
    print(plaintext)
    return 0


def run_keys_revoke(db: str | None, audit_db: str | None, id_or_name: str) -> int:
    from bastion.audit.admin_events import revocation_detail
    from bastion.auth.keys import KeyStoreError
    from bastion.cli.keys_audit import AuditTrailError, KeysAuditTrail, described

    try:
        store = _open(db)
    except KeyStoreError as exc:
        return _fail(str(exc), EXIT_CONFIG)
    try:
        revoked = store.revoke(id_or_name)  # first, whatever becomes of the audit log
    except KeyStoreError as exc:
        return _fail(str(exc))
    finally:
        store.close()
    for key in revoked:
        print(f"revoked key {key.id} ({key.name})")
    detail = revocation_detail([described(key) for key in revoked])
    try:
        with KeysAuditTrail(_audit_path(audit_db)) as trail:
            trail.write("keys.revoke", id_or_name, detail)
    except AuditTrailError as exc:
        print(f"bastion: warning: revoked, but not audited: {exc}", file=sys.stderr)
        return EXIT_UNAUDITED
    return 0
