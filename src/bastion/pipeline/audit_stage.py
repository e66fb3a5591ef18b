"""The audit stage (AD-1): the outermost stage, writing one record per request in ``finally``,
so refusals by any later stage (policy, limits, validation) are recorded like successes.

A record that cannot be written fails the request (the audit log raises ``AuditUnavailable``
rather than dropping it): a request is never served without its trace. A refusal by a rate
or concurrency limit goes to the sink's ``refused``, keyed by (principal, limit): a flood
over a limit is written as its first refusal and one counted summary a window (DS-3, DS-4).

The stage counts the requests between their entry and their record (``in_flight``): whoever
closes the audit log waits for ``settled`` first, so a request cut by a stop signal still
has its record (``cancelled``) queued, not refused by a log already closed.
"""

from __future__ import annotations

import time
from typing import Protocol

import anyio

from bastion._types import Clock, JSONValue
from bastion.audit.record import AuditRecord
from bastion.audit.refusals import RefusalKey
from bastion.errors import BastionError, RateLimited
from bastion.pipeline.exchange import Exchange
from bastion.pipeline.stage import Handler

__all__ = ["AuditSink", "AuditStage", "record_of"]


class AuditSink(Protocol):
    async def record(self, record: AuditRecord) -> None: ...

    def record_nowait(self, record: AuditRecord) -> bool: ...

    async def refused(self, key: RefusalKey, record: AuditRecord) -> None: ...


class AuditStage:
    name = "audit"

    def __init__(self, sink: AuditSink, *, wall_clock: Clock = time.time) -> None:
        self._sink = sink
        self._wall = wall_clock
        self.in_flight = 0  # requests entered and not yet recorded
        self._settled: anyio.Event | None = None

    async def settled(self, timeout: float) -> bool:
        """Wait (at most ``timeout`` seconds) until every request that entered has its record
        queued; True if none is left."""
        if self.in_flight:
            self._settled = anyio.Event()
            with anyio.move_on_after(timeout):
                await self._settled.wait()
        return self.in_flight == 0

    async def __call__(self, exchange: Exchange, proceed: Handler) -> JSONValue:
        limited = False
        self.in_flight += 1
        try:
            return await proceed(exchange)
        except RateLimited as exc:
            exchange.outcome = str(exc.code)
            limited = True
            raise
        except BastionError as exc:
            exchange.outcome = str(exc.code)
            raise
        except anyio.get_cancelled_exc_class():
            exchange.outcome = "cancelled"
            raise
        except Exception:
            exchange.outcome = "error"
            raise
        finally:
            try:
                record = record_of(exchange, self._wall())
                if limited:
                    key = (exchange.principal.id, str(exchange.detail.get("limit", "rate")))
                    with anyio.CancelScope(shield=True):
                        await self._sink.refused(key, record)
                elif not self._sink.record_nowait(record):  # the queue is full: wait, shielded
                    with anyio.CancelScope(shield=True):
                        await self._sink.record(record)
            finally:
                self.in_flight -= 1
                if not self.in_flight and self._settled is not None:
                    self._settled.set()


def record_of(exchange: Exchange, now: float) -> AuditRecord:
    """The audit record of a finished exchange."""
    principal = exchange.principal
    decision = exchange.decision
    allowed = decision.allowed if decision is not None else exchange.outcome == "ok"
    detail = dict(exchange.detail)
    if principal.method in ("break-glass",):
        detail["breakGlass"] = True
    return AuditRecord(
        time=now,
        kind="request",
        principal=principal.id,
        credential_id=principal.credential_id,
        session=exchange.session,
        request_id=exchange.call.id,
        method=exchange.method,
        target=exchange.target.name if exchange.target is not None else None,
        decision="allow" if allowed else "deny",
        rule_id=decision.rule_id if decision is not None else None,
        outcome=exchange.outcome,
        latency_ms=(time.perf_counter() - exchange.started) * 1000.0,
        detail=detail,
    )
