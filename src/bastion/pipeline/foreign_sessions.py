"""The audit of a 2025-11-25 session used by someone other than its owner (AD-1, SE-2).

A POST, GET or DELETE naming another principal's live session is refused exactly like one
naming an unknown id (404): the caller learns nothing. The audit log learns who tried it:
``ForeignSessionAudit`` writes a refusal (kind ``request``, decision ``deny``, outcome
``foreign-session``) naming the caller's principal and credential id, the request (``"DELETE
/mcp"``), the JSON-RPC id of a POST, and the session as ``session_tag`` names it in the
owner's records (a digest: the id itself would let a reader of the log use the session).
A flood is bounded like any other: through the sink's ``refused``, keyed by (principal,
``foreign-session``), so one record a window and a counted summary (DS-4). A record the log
cannot take is logged, not raised: a 500 here would tell the caller the session exists.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Final

import anyio

from bastion._types import Clock
from bastion.audit.log import AuditUnavailable
from bastion.audit.record import AuditRecord
from bastion.auth.principal import Principal
from bastion.pipeline.audit_stage import AuditSink
from bastion.pipeline.connection import session_tag
from bastion.protocol.jsonrpc import RequestId

__all__ = ["FOREIGN_SESSION", "ForeignSessionAudit"]

logger = logging.getLogger(__name__)

FOREIGN_SESSION: Final = "foreign-session"  # the outcome, and the refusal key's limit


class ForeignSessionAudit:
    """A transport's ``on_foreign_session``, writing to the audit log ``audit()`` returns
    (None: the log is off or not open yet, and nothing is written)."""

    def __init__(
        self, audit: Callable[[], AuditSink | None], *, wall_clock: Clock = time.time
    ) -> None:
        self._audit = audit
        self._wall = wall_clock

    async def __call__(
        self, principal: Principal, request: str, session_id: str, request_id: RequestId | None
    ) -> None:
        sink = self._audit()
        if sink is None:
            return
        record = AuditRecord(
            time=self._wall(),
            kind="request",
            principal=principal.id,
            credential_id=principal.credential_id,
            session=session_tag(session_id),
            request_id=request_id,
            method=request,
            decision="deny",
            outcome=FOREIGN_SESSION,
        )
        try:
            with anyio.CancelScope(shield=True):
                await sink.refused((principal.id, FOREIGN_SESSION), record)
        except AuditUnavailable:
            logger.error("the audit log could not take the refusal of a foreign session use")
