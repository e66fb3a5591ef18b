"""``AuditLog``: the async front of the store; the request path enqueues, one writer commits.

``record`` redacts the record (AD-3: every name and id, and the detail), bounds its names
and ids as the record type does (``record.bounded``: whatever a client sent reads back),
caps its size, encodes it (once: the writer chains these bytes) and puts it on a bounded
queue without a trip through the event loop. One writer thread, started once, takes the
first waiting record, lets ``commit_interval`` seconds of records gather behind it (group
commit), and appends up to ``max_batch`` of them in one transaction; so no request waits on
disk, and at a few hundred calls a second a commit (an fsync) is shared by several records
instead of paid by each. When the queue is full, ``record`` waits up to ``enqueue_timeout``
seconds for room and then raises ``AuditUnavailable``: a record is never dropped silently,
and the caller (the pipeline) fails the request closed. If the writer fails (disk full,
tampered head), the log's task group fails and takes its owner down with it. Refusals by a
limit go through ``refused`` instead, which writes a bounded number of records per flooding
key (``audit.refusals``); the log writes each ended window's summary, and every open one at
close.
"""

from __future__ import annotations

import math
import operator
import queue
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Final

import anyio
import msgspec

from bastion.audit.record import NAME_FIELDS, AuditRecord, canonical_bytes, encode_bounded
from bastion.audit.redact import Redactor, redact_text
from bastion.audit.refusals import RefusalKey, RefusalTally
from bastion.audit.store import DEFAULT_CHECKPOINT_EVERY, AuditStore
from bastion.errors import InternalError

if TYPE_CHECKING:
    from anyio.abc import TaskGroup

    from bastion._types import Clock

__all__ = ["AuditLog", "AuditUnavailable"]

DEFAULT_QUEUE_SIZE: Final = 4096
DEFAULT_MAX_BATCH: Final = 512
# How long the first record of a batch waits for company before the commit (see the module
# docstring). A record is on disk at most this much later than without grouping; bench/
# security_overhead.py prices the choice.
DEFAULT_COMMIT_INTERVAL_S: Final = 0.05
ENQUEUE_TIMEOUT_S: Final = 1.0  # a full queue means the disk is stuck; refuse, do not pile up
CLOSE_TIMEOUT_S: Final = 30.0  # draining a full queue to a slow disk at shutdown
MAX_RECORD_BYTES: Final = 64 * 1024  # a bigger ``detail`` is replaced by its size
_POLL_S: Final = 0.002  # how often a waiter (flush, a full queue, close) looks again
_NAME_VALUES: Final = operator.attrgetter(*NAME_FIELDS)


class _Stop:
    """Queued by ``__aexit__`` after the last record: the writer drains up to it and ends."""


_STOP: Final = _Stop()


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
        commit_interval: float = DEFAULT_COMMIT_INTERVAL_S,
        checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY,
        enqueue_timeout: float = ENQUEUE_TIMEOUT_S,
        wall_clock: Clock = time.time,
        clock: Clock = time.monotonic,
        refusals: RefusalTally | None = None,
    ) -> None:
        if queue_size < 1 or max_batch < 1:
            raise ValueError("queue_size and max_batch must be >= 1")
        if not 0 <= commit_interval <= 1:
            raise ValueError("commit_interval must be between 0 and 1 second")
        self._path = db_path
        self._redact = redactor or Redactor()
        self._queue_size = queue_size
        self._max_batch = max_batch
        self._interval = commit_interval
        self._gather_below = min(max_batch, max(1, queue_size // 2))
        self._checkpoint_every = checkpoint_every
        self._enqueue_timeout = enqueue_timeout
        self._wall = wall_clock
        self._clock = clock
        self._refusals = refusals or RefusalTally()
        self._store: AuditStore | None = None
        # Unbounded as a queue (the STOP marker must always fit); ``record`` bounds it by
        # counting: enqueued minus taken by the writer.
        self._queue: queue.SimpleQueue[bytes | _Stop] = queue.SimpleQueue()
        self._open = False
        self._tg: TaskGroup | None = None
        self._enqueued = 0
        self._taken = 0  # written by the writer thread only
        self._written = 0  # likewise
        self._writer_done = threading.Event()
        self._failure: Exception | None = None

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
        # A thread of its own, started here rather than from a task, so that an owner
        # cancelled at once still has its records written (the thread drains up to STOP).
        threading.Thread(target=self._write_loop, name="bastion-audit", daemon=True).start()
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        self._tg.start_soon(self._watch_writer)
        self._tg.start_soon(self._write_summaries)
        self._open = True
        return self

    async def __aexit__(self, *exc_info: object) -> bool | None:
        assert self._tg is not None
        if self._open:  # AD-1: the counts of refusals still in a window reach the log too
            for summary in self._refusals.drain(self._wall()):
                self._put(summary)
        self._open = False
        self._queue.put(_STOP)  # the writer drains what is queued, signs the head, stops
        # Shielded but bounded: a cancelled owner still gets its queued records written.
        with anyio.move_on_after(CLOSE_TIMEOUT_S, shield=True):
            while not self._writer_done.is_set():
                await anyio.sleep(_POLL_S)
        self._tg.cancel_scope.cancel()
        return await self._tg.__aexit__(*exc_info)  # type: ignore[arg-type]

    async def record(self, record: AuditRecord) -> None:
        """Queue ``record`` for writing, redacted; waits for room at most ``enqueue_timeout``.

        Raises:
            AuditUnavailable: the queue stayed full, or the log is closed.
        """
        if not self.record_nowait(record):
            await self._wait_for_room()
            self._put(record)

    def record_nowait(self, record: AuditRecord) -> bool:
        """Queue ``record`` if there is room now and return True; else False (nothing queued:
        call ``record`` to wait). The request path's way, with no await when nothing waits.

        Raises:
            AuditUnavailable: the log is closed.
        """
        self._check_open()
        if self._full():
            return False
        self._put(record)
        return True

    async def refused(self, key: RefusalKey, record: AuditRecord) -> None:
        """Record ``record``, a refusal of ``key`` by a limit, as ``RefusalTally`` says: at
        once when it opens a window, else as a count in that window's summary.

        Raises:
            AuditUnavailable: as ``record``.
        """
        self._check_open()
        for out in self._refusals.refused(key, record, self._clock()):
            await self.record(out)

    async def repeated(self, key: RefusalKey, record: AuditRecord) -> None:
        """Record ``record``, a routine allowed event that may come in floods (an admin's
        reads), in the bounded numbers ``refused`` keeps: its window's summary counts it as
        ``repeated``.

        Raises:
            AuditUnavailable: as ``record``.
        """
        await self.refused(key, record)

    async def _write_summaries(self) -> None:
        while True:
            await anyio.sleep(self._refusals.window)
            for summary in self._refusals.due(self._clock(), self._wall()):
                await self.record(summary)

    def _put(self, record: AuditRecord) -> None:
        # Callers checked that the log is open, with no await since (record_nowait; or
        # _wait_for_room, which checks after every sleep).
        self._queue.put(self._prepare(record))
        self._enqueued += 1

    def _full(self) -> bool:
        return self._enqueued - self._taken >= self._queue_size

    def _check_open(self) -> None:
        if not self._open or self._writer_done.is_set():
            raise AuditUnavailable("the audit log is not open")

    async def _wait_for_room(self) -> None:
        try:
            with anyio.fail_after(self._enqueue_timeout):
                while self._full():
                    await anyio.sleep(_POLL_S)
                    self._check_open()
        except TimeoutError as exc:
            raise AuditUnavailable("audit queue full") from exc

    async def flush(self, timeout: float = math.inf) -> bool:
        """Wait until every record queued before this call is committed: True then, False
        when ``timeout`` seconds passed first (a stuck disk).

        Raises:
            AuditUnavailable: the writer stopped before committing them.
        """
        target = self._enqueued
        with anyio.move_on_after(timeout):
            while self._written < target:
                if self._writer_done.is_set():
                    raise AuditUnavailable("the audit writer stopped")
                await anyio.sleep(_POLL_S)
            return True
        return False

    def _prepare(self, record: AuditRecord) -> bytes:
        """``record`` redacted, bounded, capped and encoded as the store chains it."""
        record = _redact_names(record)
        record, body = encode_bounded(record)
        # Measure before redacting the detail, too: a huge detail is dropped whole rather
        # than scanned on the request path (only the detail can be large by now).
        if record.detail and len(body) > MAX_RECORD_BYTES:
            record, body = _cap(record, len(body)), b""
        detail = self._redact(record.detail)
        # NaN and infinities encode as JSON null, which would not decode back into a record.
        # When nothing changes, ``body`` already holds the record's bytes: the redactor only
        # ever puts strings where values were, so an equal detail encodes the same.
        finite = math.isfinite(record.latency_ms) and math.isfinite(record.time)
        if not (body and finite and detail == record.detail):
            latency = record.latency_ms if math.isfinite(record.latency_ms) else -1.0
            when = record.time if math.isfinite(record.time) else self._wall()
            record = msgspec.structs.replace(record, time=when, detail=detail, latency_ms=latency)
            body = canonical_bytes(record)
        if len(body) > MAX_RECORD_BYTES:
            body = canonical_bytes(_cap(record, len(body)))
        return body

    async def _watch_writer(self) -> None:
        """Fail the log's task group (and so its owner) if the writer thread fails."""
        await anyio.to_thread.run_sync(
            self._writer_done.wait, abandon_on_cancel=True, limiter=anyio.CapacityLimiter(1)
        )
        if self._failure is not None:
            raise self._failure

    def _write_loop(self) -> None:
        assert self._store is not None
        store, pending = self._store, self._queue
        try:
            stopping = False
            while not stopping:
                first = pending.get()
                if isinstance(first, _Stop):
                    break
                # Let the batch fill, unless it is full already or the queue is filling up
                # (then each commit must start at once).
                if self._interval and self._enqueued - self._taken < self._gather_below:
                    time.sleep(self._interval)
                batch = [first]
                while len(batch) < self._max_batch:
                    try:
                        item = pending.get_nowait()
                    except queue.Empty:
                        break
                    if isinstance(item, _Stop):
                        stopping = True
                        break
                    batch.append(item)
                self._taken += len(batch)
                store.append_encoded(batch)
                self._written += len(batch)
            store.checkpoint()
        except Exception as exc:
            self._failure = exc
        finally:
            store.close()
            self._writer_done.set()


def _redact_names(record: AuditRecord) -> AuditRecord:
    """``record`` with a secret in any name or id masked (AD-1, AD-3): every one of them may
    hold what a client sent (a JSON-RPC id, a method, a path in an authentication record's
    ``method``, a resource URI). Whole values are redacted, before they are bounded: a cut
    could leave part of a secret that no longer matches its pattern, and the bound's digest
    must not be a secret's. The record itself when nothing changes."""
    changes: dict[str, str] = {}
    for name, value in zip(NAME_FIELDS, _NAME_VALUES(record), strict=True):
        if isinstance(value, str):
            clean = redact_text(value)
            if clean != value:
                changes[name] = clean
    return msgspec.structs.replace(record, **changes) if changes else record


def _cap(record: AuditRecord, size: int) -> AuditRecord:
    """``record`` with its detail replaced by its size if it encodes to over MAX_RECORD_BYTES
    (``size``: its encoded length)."""
    if size <= MAX_RECORD_BYTES:
        return record
    return msgspec.structs.replace(record, detail={"truncated": True, "bytes": size})
