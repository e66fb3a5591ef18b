"""The admin API's key, approval and audit backends over the gateway's real stores: the
API-key database (``KeyStore``, the one the ``bastion keys`` command uses), the two kinds of
pending approval (tool definitions held by pinning, TC-2; calls waiting for a human, TC-6),
and the audit database read after the live log's queued records are committed.
"""

from __future__ import annotations

import builtins
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Final

import anyio

from bastion.admin.backends import (
    ApprovalRecord,
    ApprovalStatus,
    AuditBackend,
    AuditFilters,
    AuditPage,
    KeyRecord,
)
from bastion.admin.errors import Conflict, InvalidInput, NotFound
from bastion.audit import AuditLog, AuditUnavailable, VerifyReport
from bastion.auth.keys import KEY_PREFIX, ApiKey, KeyStore, KeyStoreError
from bastion.auth.keys import NoSuchKey as KeyNotFound
from bastion.guard.pins import NotPending, PinStore
from bastion.pipeline.approvals import ApprovalGate

__all__ = ["GatewayApprovals", "LiveAudit", "StoreKeys"]

FLUSH_TIMEOUT_S: Final = 5.0


def _record(key: ApiKey) -> KeyRecord:
    return KeyRecord(
        id=key.id,
        name=key.name,
        prefix=f"{KEY_PREFIX}{key.id}_",
        roles=key.roles,
        created_at=key.created,
        expires_at=key.expires,
        revoked=key.revoked_at is not None,
        break_glass=key.break_glass,
    )


class StoreKeys:
    """``KeyBackend`` over the key database (SQLite, called in a worker thread)."""

    def __init__(self, store: KeyStore) -> None:
        self._store = store

    async def list(self) -> Sequence[KeyRecord]:
        keys = await anyio.to_thread.run_sync(self._store.list)
        return [_record(key) for key in keys]

    async def create(
        self, name: str, roles: tuple[str, ...], expires_in: float | None
    ) -> tuple[KeyRecord, str]:
        try:
            key, plaintext = await anyio.to_thread.run_sync(
                lambda: self._store.create(name, roles, expires_in=expires_in)
            )
        except KeyStoreError as exc:
            raise InvalidInput(str(exc)) from exc
        return _record(key), plaintext

    async def rotate(self, key_id: str, overlap: float) -> tuple[KeyRecord, str]:
        try:
            key, plaintext = await anyio.to_thread.run_sync(
                lambda: self._store.rotate(key_id, overlap=overlap)
            )
        except KeyNotFound as exc:
            raise NotFound("no such key") from exc
        except KeyStoreError as exc:
            raise Conflict(str(exc)) from exc
        return _record(key), plaintext

    async def revoke(self, key_id: str) -> None:
        try:
            await anyio.to_thread.run_sync(lambda: self._store.revoke(key_id))
        except KeyNotFound as exc:
            raise NotFound("no such key") from exc


class GatewayApprovals:
    """``ApprovalBackend`` over held tool definitions (ids ``pin:<server>:<tool>:<hash>``)
    and calls waiting for a human (ids ``apr_...``). Approving a tool definition rebuilds the
    catalog (``on_pins_changed``), so the tool reappears at once."""

    def __init__(
        self,
        calls: ApprovalGate,
        pins: PinStore | None,
        on_pins_changed: Callable[[], Awaitable[None]],
    ) -> None:
        self._calls = calls
        self._pins = pins
        self._changed = on_pins_changed

    async def pending(self) -> Sequence[ApprovalRecord]:
        records: builtins.list[ApprovalRecord] = [
            ApprovalRecord(
                id=item.id,
                principal=item.principal,
                tool=item.tool,
                requested_at=item.created,
            )
            for item in self._calls.pending()
        ]
        if self._pins is not None:
            held = await anyio.to_thread.run_sync(self._pins.pending)
            records += [
                ApprovalRecord(
                    id=f"pin:{item.server}:{item.tool}:{item.hash}",
                    principal=f"upstream:{item.server}",
                    tool=item.tool,
                    requested_at=item.first_seen,
                )
                for item in held
            ]
        return records

    async def approve(self, approval_id: str, by: str) -> ApprovalRecord:
        return await self._decide(approval_id, by, approve=True)

    async def reject(self, approval_id: str, by: str) -> ApprovalRecord:
        return await self._decide(approval_id, by, approve=False)

    async def _decide(self, approval_id: str, by: str, *, approve: bool) -> ApprovalRecord:
        """404 for an id never held (or forgotten), 409 for one already decided."""
        status: ApprovalStatus = "approved" if approve else "rejected"
        if approval_id.startswith("pin:") and self._pins is not None:
            return await self._decide_pin(self._pins, approval_id, by, status)
        item = self._calls.get(approval_id)
        if item is None:
            raise NotFound("no such pending approval")
        if self._calls.decide(approval_id, approve=approve, by=by) is None:
            raise Conflict("already decided")
        return ApprovalRecord(
            id=item.id,
            principal=item.principal,
            tool=item.tool,
            requested_at=item.created,
            status=status,
            decided_by=by,
        )

    async def _decide_pin(
        self, pins: PinStore, approval_id: str, by: str, status: ApprovalStatus
    ) -> ApprovalRecord:
        # pin:<server>:<tool>:<hash>: server names have no ':' and hashes are hex, so a
        # tool name may hold ':' itself.
        server, _, rest = approval_id.removeprefix("pin:").partition(":")
        tool, _, digest = rest.rpartition(":")
        held = await anyio.to_thread.run_sync(pins.pending, server)
        item = next((p for p in held if p.tool == tool and p.hash == digest), None)
        if item is None:
            if await anyio.to_thread.run_sync(pins.decided, server, tool, digest):
                raise Conflict("already decided")
            raise NotFound("no such pending approval")
        decide = pins.approve if status == "approved" else pins.reject
        try:
            await anyio.to_thread.run_sync(lambda: decide(server, tool, digest, by=by))
        except NotPending as exc:  # decided (or changed again) since it was read
            raise Conflict("already decided") from exc
        await self._changed()
        return ApprovalRecord(
            id=approval_id,
            principal=f"upstream:{server}",
            tool=tool,
            requested_at=item.first_seen,
            status=status,
            decided_by=by,
        )


class LiveAudit:
    """``AuditBackend`` that reads what the caller just did: it waits until the live log
    (group commit, ``audit.commit_interval``) has committed every record queued so far,
    then reads the database through ``stored``."""

    def __init__(self, stored: AuditBackend, live: Callable[[], AuditLog | None]) -> None:
        self._stored = stored
        self._live = live

    async def query(self, filters: AuditFilters, limit: int) -> AuditPage:
        await self._flush()
        return await self._stored.query(filters, limit)

    async def verify(self) -> VerifyReport:
        await self._flush()
        return await self._stored.verify()

    async def _flush(self) -> None:
        log = self._live()
        if log is None:
            return
        with contextlib.suppress(AuditUnavailable):
            await log.flush(FLUSH_TIMEOUT_S)  # a stuck or closed log: answer from the disk
