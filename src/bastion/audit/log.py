"""``AuditLog``: the async front of the store; the request path enqueues, one writer commits.

``record`` redacts the record's ``detail`` (AD-3), caps its size and puts it on a bounded
queue; a single writer task takes up to ``max_batch`` records at a time and appends them in one
transaction in a worker thread, so no request waits on disk. When the queue is full, ``record``
waits up to ``enqueue_timeout`` seconds for room and then raises ``AuditUnavailable``: a record
is never dropped silently, and the caller (the pipeline) fails the request closed. If the writer
fails (disk full, tampered head), the log's task group fails and takes its owner down with it.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Final

import anyio
import msgspec

from bastion.audit.record import AuditRecord, canonical_bytes
from bastion.audit.redact import Redactor, redact_text
from bastion.audit.store import DEFAULT_CHECKPOINT_EVERY, AuditStore
from bastion.errors import InternalError

if TYPE_CHECKING:
    from anyio.abc import TaskGroup
    from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

    from bastion._types import Clock

__all__ = ["AuditLog", "AuditUnavailable"]

DEFAULT_QUEUE_SIZE: Final = 4096
DEFAULT_MAX_BATCH: Final = 512
ENQUEUE_TIMEOUT_S: Final = 1.0  # a full queue means the disk is stuck; refuse, do not pile up
CLOSE_TIMEOUT_S: Final = 30.0  # draining a full queue to a slow disk at shutdown
MAX_RECORD_BYTES: Final = 64 * 1024  # a bigger ``detail`` is replaced by its size


class AuditUnavailable(InternalError):
    """The audit log cannot take a record now (queue full past the timeout, or closed)."""


class AuditLog:
    """Tamper-evident audit log at ``db_path``; use as ``async with AuditLog(path) as log``."""

    def __init__(
        self,
        db_path: Path,
        *,
        redactor: Redactor | None = None,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        max_batch: int = DEFAULT_MAX_BATCH,
        checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY,
        enqueue_timeout: float = ENQUEUE_TIMEOUT_S,
        wall_clock: Clock = time.time,
    ) -> None:
        if queue_size < 1 or max_batch < 1:
            raise ValueError("queue_size and max_batch must be >= 1")
        self._path = db_path
        self._redact = redactor or Redactor()
        self._queue_size = queue_size
        self._max_batch = max_batch
        self._checkpoint_every = checkpoint_every
        self._enqueue_timeout = enqueue_timeout
        self._wall = wall_clock
        self._store: AuditStore | None = None
        self._send: MemoryObjectSendStream[AuditRecord] | None = None
        self._receive: MemoryObjectReceiveStream[AuditRecord] | None = None
        self._tg: TaskGroup | None = None
        self._enqueued = 0
        self._written = 0
        self._progress = anyio.Event()
        self._writer_done = anyio.Event()

    @property
    def seq(self) -> int:
        """The last seq committed to disk."""
        return 0 if self._store is None else self._store.seq

    async def __aenter__(self) -> AuditLog:
        self._store = await anyio.to_thread.run_sync(
            lambda: AuditStore.open(
                self._path, checkpoint_every=self._checkpoint_every, wall_clock=self._wall
            )
        )
        send, receive = anyio.create_memory_object_stream[AuditRecord](self._queue_size)
        self._send, self._receive = send, receive
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        self._tg.start_soon(self._writer, receive)
        return self

    async def __aexit__(self, *exc_info: object) -> bool | None:
        assert self._tg is not None and self._send is not None and self._receive is not None
        assert self._store is not None
        store, receive = self._store, self._receive
        self._send.close()  # the writer drains what is queued, then stops
        self._send = None
        try:
            # Let the writer finish the queue, shielded but bounded; then stop it regardless.
            with anyio.move_on_after(CLOSE_TIMEOUT_S, shield=True):
                await self._writer_done.wait()
            self._tg.cancel_scope.cancel()
            return await self._tg.__aexit__(*exc_info)  # type: ignore[arg-type]
        finally:
            # If the writer was cancelled (the owner's scope was), what it left in the queue
            # is still written here: shielded, then the head is signed and the file closed.
            leftovers = _drain(receive)
            receive.close()
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(_finish, store, leftovers)

    async def record(self, record: AuditRecord) -> None:
        """Queue ``record`` for writing, redacted; waits for room at most ``enqueue_timeout``.

        Raises:
            AuditUnavailable: the queue stayed full, or the log is closed.
        """
        if self._send is None:
            raise AuditUnavailable("the audit log is not open")
        prepared = self._prepare(record)
        try:
            # Fast path: room in the queue, no cancel scope and no trip through the event loop
            # (measured: the timed path cost about half the throughput of the whole log).
            self._send.send_nowait(prepared)
        except anyio.WouldBlock:
            await self._send_waiting(prepared)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError) as exc:
            raise AuditUnavailable("the audit log is closed") from exc
        self._enqueued += 1

    async def _send_waiting(self, record: AuditRecord) -> None:
        assert self._send is not None
        try:
            with anyio.fail_after(self._enqueue_timeout):
                await self._send.send(record)
        except TimeoutError as exc:
            raise AuditUnavailable("audit queue full") from exc
        except (anyio.ClosedResourceError, anyio.BrokenResourceError) as exc:
            raise AuditUnavailable("the audit log is closed") from exc

    async def flush(self) -> None:
        """Wait until every record queued before this call is committed."""
        target = self._enqueued
        while self._written < target:
            await self._progress.wait()

    def _prepare(self, record: AuditRecord) -> AuditRecord:
        # Measure before redacting, too: a huge detail is dropped whole rather than scanned
        # on the request path.
        record = _cap(record)
        detail = self._redact(record.detail)
        # NaN and infinities encode as JSON null, which would not decode back into a record.
        latency = record.latency_ms if math.isfinite(record.latency_ms) else -1.0
        when = record.time if math.isfinite(record.time) else self._wall()
        # A credential id or a resource URI must never carry a secret either (AD-1, AD-3).
        names = {
            name: redact_text(value)
            for name in ("principal", "credential_id", "target")
            if isinstance(value := getattr(record, name), str)
        }
        return _cap(
            msgspec.structs.replace(record, time=when, detail=detail, latency_ms=latency, **names)
        )

    async def _writer(self, receive: MemoryObjectReceiveStream[AuditRecord]) -> None:
        assert self._store is not None
        store = self._store
        try:
            async for first in receive:
                batch = [first, *_drain(receive, self._max_batch - 1)]
                await anyio.to_thread.run_sync(store.append, batch)
                self._written += len(batch)
                self._progress.set()
                self._progress = anyio.Event()
        finally:
            self._writer_done.set()


def _cap(record: AuditRecord) -> AuditRecord:
    """``record`` with its detail replaced by its size if it encodes to over MAX_RECORD_BYTES."""
    size = len(canonical_bytes(record))
    if size <= MAX_RECORD_BYTES:
        return record
    return msgspec.structs.replace(record, detail={"truncated": True, "bytes": size})


def _drain(receive: MemoryObjectReceiveStream[AuditRecord], limit: int = -1) -> list[AuditRecord]:
    """Up to ``limit`` records already queued (all of them if ``limit`` < 0), without waiting."""
    items: list[AuditRecord] = []
    while len(items) != limit:
        try:
            items.append(receive.receive_nowait())
        except (anyio.WouldBlock, anyio.EndOfStream, anyio.ClosedResourceError):
            break
    return items


def _finish(store: AuditStore, leftovers: list[AuditRecord]) -> None:
    try:
        store.append(leftovers)
        store.checkpoint()
    finally:
        store.close()
