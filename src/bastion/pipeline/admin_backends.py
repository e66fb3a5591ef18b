"""The admin API's key and audit backends over the gateway's real stores: the API-key
database (``KeyStore``, the one the ``bastion keys`` command uses) and the audit database
read after the live log's queued records are committed (approvals: ``admin_approvals``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Final

import anyio

from bastion.admin.backends import AuditBackend, AuditFilters, AuditPage, KeyRecord
from bastion.admin.errors import Conflict, InvalidInput, NotFound
from bastion.audit import AuditLog, AuditUnavailable, VerifyReport
from bastion.auth.keys import KEY_PREFIX, ApiKey, KeyStore, KeyStoreError
from bastion.auth.keys import NoSuchKey as KeyNotFound

__all__ = ["FLUSH_TIMEOUT_S", "LiveAudit", "StoreKeys"]

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
        self,
        name: str,
        roles: tuple[str, ...],
        expires_in: float | None,
        *,
        expires_by: float | None = None,
    ) -> tuple[KeyRecord, str]:
        try:
            key, plaintext = await anyio.to_thread.run_sync(
                lambda: self._store.create(
                    name, roles, expires_in=expires_in, expires_by=expires_by
                )
            )
        except KeyStoreError as exc:
            raise InvalidInput(str(exc)) from exc
        return _record(key), plaintext

    async def rotate(
        self, key_id: str, overlap: float, *, expires_by: float | None = None
    ) -> tuple[KeyRecord, str]:
        try:
            key, plaintext = await anyio.to_thread.run_sync(
                lambda: self._store.rotate(key_id, overlap=overlap, expires_by=expires_by)
            )
        except KeyNotFound as exc:
            raise NotFound("no such key") from exc
        except KeyStoreError as exc:
            raise Conflict(str(exc)) from exc
        return _record(key), plaintext

    async def revoke(self, key_id: str) -> Sequence[KeyRecord]:
        try:
            revoked = await anyio.to_thread.run_sync(lambda: self._store.revoke(key_id))
        except KeyNotFound as exc:
            raise NotFound("no such key") from exc
        return [_record(key) for key in revoked]


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
