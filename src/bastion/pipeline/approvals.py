"""Human approval of high-security tool calls (seed 004, TC-6).

A call whose policy decision carries an ``Approval`` obligation runs only once a human said
yes. For ``approval: human``, a 2025-11-25 client that can elicit is asked there and then
(``elicitation/create`` with one boolean: the client's user decides, so a client that answers
for itself approves its own calls; ``approval: admin`` never asks the client). Otherwise the
call is refused with an approval id, an admin approves it through the admin API, and the
same principal's retry with the same arguments, within ``ttl``, runs once. Pending approvals
are bounded; the oldest are forgotten first.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from collections import OrderedDict
from typing import Final, Literal

import msgspec

from bastion._types import Clock, JSONObject
from bastion.errors import BastionError, Denied
from bastion.pipeline.exchange import Exchange

__all__ = ["ApprovalGate", "CallApproval"]

logger = logging.getLogger(__name__)

MAX_PENDING: Final = 1024
ASK_TIMEOUT: Final = 300.0  # seconds a human has to answer an elicitation


class CallApproval(msgspec.Struct, kw_only=True):
    """One call waiting for (or holding) an admin's decision. No argument values are kept,
    only their hash, so the queue never holds secrets."""

    id: str
    principal: str
    tool: str
    arguments_sha256: str
    created: float  # when the call was first refused for want of approval
    state: Literal["pending", "approved", "rejected"] = "pending"
    decided_by: str | None = None
    decided_at: float | None = None  # the retry window runs from here

    def since(self) -> float:
        """When this entry's ``ttl`` started: the decision, else the request."""
        return self.created if self.decided_at is None else self.decided_at


class ApprovalGate:
    def __init__(
        self, *, ttl: float = 600.0, max_pending: int = MAX_PENDING, wall_clock: Clock = time.time
    ) -> None:
        self._ttl = ttl
        self._max = max_pending
        self._wall = wall_clock
        self._items: OrderedDict[str, CallApproval] = OrderedDict()

    async def require(self, exchange: Exchange, by: Literal["human", "admin"] = "human") -> None:
        """Return when a human approved this call (an admin, for ``by="admin"``); raise
        ``Denied`` otherwise."""
        if by == "human" and not exchange.modern and "elicitation" in exchange.client_capabilities:
            await self._ask(exchange)
            return
        self._expire()
        key = _key(exchange)
        for item in self._items.values():
            if (item.principal, item.tool, item.arguments_sha256) != key:
                continue
            if item.state == "approved":
                del self._items[item.id]  # one approval, one call
                exchange.detail["approvedBy"] = item.decided_by
                return
            if item.state == "rejected":
                raise Denied("approval rejected", message="Approval rejected")
            raise _pending(item)
        item = CallApproval(
            id="apr_" + secrets.token_urlsafe(12),
            principal=key[0],
            tool=key[1],
            arguments_sha256=key[2],
            created=self._wall(),
        )
        self._items[item.id] = item
        while len(self._items) > self._max:
            self._items.popitem(last=False)
        logger.warning("call to %s by %s waits for an admin's approval (%s)", *key[1::-1], item.id)
        raise _pending(item)

    def pending(self) -> list[CallApproval]:
        self._expire()
        return [item for item in self._items.values() if item.state == "pending"]

    def get(self, approval_id: str) -> CallApproval | None:
        """The entry ``approval_id`` while it is remembered (pending, or decided and not yet
        used by the retry), else None."""
        self._expire()
        return self._items.get(approval_id)

    def decide(self, approval_id: str, *, approve: bool, by: str) -> CallApproval | None:
        """Approve or reject a pending call; None when there is no such pending call."""
        self._expire()
        item = self._items.get(approval_id)
        if item is None or item.state != "pending":
            return None
        item.state = "approved" if approve else "rejected"
        item.decided_by = by
        item.decided_at = self._wall()
        return item

    def _expire(self) -> None:
        cutoff = self._wall() - self._ttl
        for key in [k for k, v in self._items.items() if v.since() < cutoff]:
            del self._items[key]

    async def _ask(self, exchange: Exchange) -> None:
        target = exchange.target.name if exchange.target is not None else exchange.method
        params: JSONObject = {
            "message": f"Allow {exchange.principal.id} to run {target}?",
            "requestedSchema": {
                "type": "object",
                "properties": {"approve": {"type": "boolean", "title": f"Run {target}"}},
                "required": ["approve"],
            },
        }
        try:
            answer = await exchange.call.request("elicitation/create", params, timeout=ASK_TIMEOUT)
        except BastionError as exc:
            detail = f"approval not obtained: {exc.detail}"
            raise Denied(detail, message="Approval required") from exc
        content = answer.get("content") if isinstance(answer, dict) else None
        if not (
            isinstance(answer, dict)
            and answer.get("action") == "accept"
            and isinstance(content, dict)
            and content.get("approve") is True
        ):
            raise Denied("approval declined", message="Approval declined")
        exchange.detail["approvedBy"] = "elicitation"


def _pending(item: CallApproval) -> Denied:
    return Denied("approval pending", message="Approval required", data={"approvalId": item.id})


def _key(exchange: Exchange) -> tuple[str, str, str]:
    tool = exchange.target.name if exchange.target is not None else exchange.method
    digest = hashlib.sha256(msgspec.json.encode(exchange.arguments, order="sorted")).hexdigest()
    return (exchange.principal.id, tool, digest)
