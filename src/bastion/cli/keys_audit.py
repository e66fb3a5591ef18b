"""``KeysAuditTrail``: the gateway's audit log, open for one ``bastion keys`` change (AD-1).

A change is recorded as the admin API records it (``bastion.audit.admin_events``): kind
``admin``, method ``keys.create``, ``keys.rotate`` or ``keys.revoke``, principal and
credential id the local user (``local_principal``: the process's effective uid, never
``$USER``), the key id (for a revocation, the id or name asked for) as target, outcome
``ok``, and the key's name, roles, expiry and break-glass flag as detail. It goes through
the real ``AuditLog`` (redacted, hash-chained, a signed checkpoint on close), which a
running gateway may share: each batch continues from the head it locked. ``write`` returns
only once the record is committed.

Only the owner of the log writes it: the log's file, or for a log not made yet the
directory that will hold it (the nearest one that exists), must belong to the effective uid.
Anyone else is refused before anything is opened, with the owner's uid: a log that root
made (0600, its own) would lock a gateway running as another user out of its own log, and
the generic advice to ``chown`` a file that another user owns would do the same. So run
``bastion keys`` as the user the gateway runs as.

A failure is one line naming the log and the problem (``AuditTrailError``); the caller
decides what it means for its change (``bastion.cli.keys``).
"""

from __future__ import annotations

import os
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from anyio.from_thread import BlockingPortal

    from bastion._types import JSONObject
    from bastion.admin.app import AdminEvent
    from bastion.audit import AuditLog
    from bastion.auth.keys import ApiKey

__all__ = [
    "AuditTrailError",
    "KeysAuditTrail",
    "default_audit_db_path",
    "described",
    "owner_refusal",
]


class AuditTrailError(Exception):
    """The audit log cannot take the record (the message names the log and why)."""


class _Described(NamedTuple):
    id: str
    name: str
    roles: tuple[str, ...]
    expires_at: float | None
    break_glass: bool


def described(key: ApiKey) -> _Described:
    """``key`` as its audit detail reads it (a ``DescribedKey``, as the admin API's keys)."""
    return _Described(key.id, key.name, key.roles, key.expires, key.break_glass)


def default_audit_db_path() -> Path:
    """The gateway's default audit log, as ``bastion audit --db`` defaults."""
    from bastion._paths import audit_db

    return audit_db()


def owner_refusal(path: Path) -> str | None:
    """Why this user must not write the log at ``path``, or None when it may: the log, or
    the nearest existing directory that would hold a new one, is this user's."""
    holder = path
    while not holder.exists() and holder.parent != holder:
        holder = holder.parent
    try:
        owner, me = holder.stat().st_uid, os.geteuid()
    except OSError as exc:
        return f"cannot examine {holder}: {exc.strerror or exc}"
    if owner == me:
        return None
    whose = "it" if holder == path else f"there is none yet, and {holder}"
    return (
        f"{whose} belongs to uid {owner}; run this command as that user (the gateway's): "
        f"a log written by uid {me} could lock that user out of it"
    )


class KeysAuditTrail:
    """``with KeysAuditTrail(path) as trail: ... trail.write(...)``; the log is opened on
    entry (a tampered log, an unusable signing key or file raise ``AuditTrailError`` there)
    and closed, with its head signed, on exit."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stack = ExitStack()
        self._portal: BlockingPortal | None = None
        self._log: AuditLog | None = None
        self._record: AdminEvent | None = None
        self._reported = False  # a failure was raised already: say nothing more on close
        self._committed = False

    def __enter__(self) -> KeysAuditTrail:
        from anyio.from_thread import start_blocking_portal

        from bastion.audit import AuditLog
        from bastion.audit.admin_events import audit_events

        refusal = owner_refusal(self.path)
        if refusal is not None:
            raise AuditTrailError(f"not writing the audit log {self.path}: {refusal}")
        try:
            self._portal = self._stack.enter_context(start_blocking_portal())
            # No commit interval: nothing else is waiting to share this record's commit.
            log = AuditLog(self.path, commit_interval=0)
            self._log = self._stack.enter_context(self._portal.wrap_async_context_manager(log))
        except Exception as exc:
            raise self._failure(exc) from exc
        self._record = audit_events(self._log)
        return self

    def write(self, action: str, target: str | None, detail: JSONObject) -> None:
        """Record ``action`` (outcome ``ok``) on ``target`` by the local user, and wait until
        the record is committed.

        Raises:
            AuditTrailError: it was not committed (the log is then closed).
        """
        from bastion.auth.local import local_principal

        assert self._portal is not None and self._log is not None and self._record is not None
        try:
            self._portal.call(self._record, local_principal(), action, target, "ok", detail)
            # No timeout: a record still queued when we give up could be committed later,
            # and the log would then tell of a change the caller took back.
            self._portal.call(self._log.flush)
        except Exception as exc:
            raise self._failure(exc) from exc
        self._committed = True

    def __exit__(self, *exc_info: object) -> None:
        try:
            self._stack.close()  # never handed the caller's exception: it is not the log's
        except Exception as exc:
            if not self._reported:  # what was written is committed; only the close failed
                kept = "; the record written is kept" if self._committed else ""
                print(
                    f"bastion: warning: the audit log {self.path} did not close cleanly "
                    f"({_one_line(exc)}){kept}",
                    file=sys.stderr,
                )

    def _failure(self, exc: Exception) -> AuditTrailError:
        """``exc`` as the error to raise, after closing the log: its close reports the
        writer's own failure (a lock, a full disk), which says more than ``exc`` may."""
        self._reported = True
        errors: list[BaseException] = [exc]
        try:
            self._stack.close()
        except Exception as closing:
            errors.insert(0, closing)
        return AuditTrailError(f"cannot write to the audit log {self.path}: {_one_line(*errors)}")


def _one_line(*errors: BaseException) -> str:
    """The most telling message in ``errors`` (the first that is not the log's mere "writer
    stopped", looking into groups), on one line."""
    from bastion.audit import AuditUnavailable

    leaves: list[BaseException] = []
    pending = list(errors)
    while pending:
        each = pending.pop(0)
        if isinstance(each, BaseExceptionGroup):
            pending[:0] = list(each.exceptions)
        else:
            leaves.append(each)
    telling = [leaf for leaf in leaves if not isinstance(leaf, AuditUnavailable)]
    chosen = (telling or leaves or list(errors))[0]
    return " ".join(str(chosen).split()) or type(chosen).__name__
