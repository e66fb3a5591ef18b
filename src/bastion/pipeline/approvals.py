"""Human approval of high-security tool calls (seed 004, TC-6).

A call whose policy decision carries an ``Approval`` obligation runs only once a human said
yes. For ``approval: human``, a 2025-11-25 client that can elicit is asked there and then
(``elicitation/create`` with one boolean, the message naming the tool and its redacted,
bounded arguments: the client's user decides, so a client that answers for itself approves
its own calls; ``approval: admin`` never asks the client). Otherwise the
call is refused with an approval id, an admin approves it through the admin API, and the
same principal's retry with the same arguments, within ``ttl``, runs once.

An entry is bound to its arguments by ``arguments_hmac`` (HMAC-SHA-256 of their canonical
JSON, keys sorted at every depth, no whitespace, UTF-8, keyed by the gateway's secret
``key``): a retry with other arguments is another call, waiting for an approval of its own.
What the admin decides on is that digest and a preview of the arguments, masked by the
audit redactor and cut at ``MAX_ARGUMENTS_PREVIEW`` characters; no other argument value is
kept. The approval id and the digest go into the audit detail of every refusal of the call
and of the run an approval let through (``approvalId``, ``arguments_hmac``; the run also
``approvedBy``), so the audit log links request, decision (an admin record whose target is
the id) and run (AD-1), and shows calls of one gateway with identical arguments. Keyed, so
that a reader of the log or of the approvals cannot test guesses of a value the redactor
masked (a phone number, a short code) against the digest (AD-3); without ``key`` the gate
draws a random one, which links only what this process sees.

The table is shared by every principal and bounded (DS-3): at most ``MAX_PENDING`` entries,
and at most ``MAX_PENDING_PER_PRINCIPAL`` per principal. A principal asking for one more
than its share forgets its own oldest pending entry rather than being refused: agents retry
with varied arguments and leave requests behind, and a refusal would lock the principal out
until its stale entries expire (``ttl``), with no way to withdraw them; forgetting costs
only the principal itself (its retry asks again). When the whole table is full, the entry
that goes belongs to the principal holding the most, never to one holding fewer. Within a
principal, pending entries go first (oldest first), then rejected ones, and an approved
entry not yet used by its retry goes last: it carries an admin's decision.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from typing import Final, Literal

import msgspec

from bastion._types import Clock, JSONObject
from bastion.audit.redact import Redactor
from bastion.errors import BastionError, Denied
from bastion.pipeline.exchange import Exchange

__all__ = [
    "ARGUMENTS_KEY_BYTES",
    "MAX_ARGUMENTS_PREVIEW",
    "MAX_PENDING",
    "MAX_PENDING_PER_PRINCIPAL",
    "ApprovalGate",
    "CallApproval",
]

logger = logging.getLogger(__name__)

MAX_PENDING: Final = 1024  # entries in the whole table
MAX_PENDING_PER_PRINCIPAL: Final = 32  # entries one principal holds (its share)
ASK_TIMEOUT: Final = 300.0  # seconds a human has to answer an elicitation
MAX_ARGUMENTS_PREVIEW: Final = 512  # characters of a waiting call's redacted arguments shown
ARGUMENTS_KEY_BYTES: Final = 32  # the least key the arguments' HMAC takes


class CallApproval(msgspec.Struct, kw_only=True):
    """One call waiting for (or holding) an admin's decision: the keyed digest of its
    arguments (what an approval is for) and a preview of them, redacted and bounded; nothing
    else of them is kept."""

    id: str
    principal: str
    tool: str
    arguments_hmac: str
    arguments_preview: str = ""  # redacted, at most MAX_ARGUMENTS_PREVIEW characters
    created: float  # when the call was first refused for want of approval
    state: Literal["pending", "approved", "rejected"] = "pending"
    decided_by: str | None = None
    decided_at: float | None = None  # the retry window runs from here

    def since(self) -> float:
        """When this entry's ``ttl`` started: the decision, else the request."""
        return self.created if self.decided_at is None else self.decided_at


# The order in which one principal's entries give way: undecided first, an approval last.
_KEEP: Final = {"pending": 0, "rejected": 1, "approved": 2}


class ApprovalGate:
    def __init__(
        self,
        *,
        ttl: float = 600.0,
        max_pending: int = MAX_PENDING,
        max_per_principal: int = MAX_PENDING_PER_PRINCIPAL,
        wall_clock: Clock = time.time,
        redactor: Redactor | None = None,
        key: bytes | None = None,
    ) -> None:
        """``redactor`` masks the previews (the audit log's, with its configured fields);
        ``key`` keys the arguments' digests (random when None)."""
        if max_pending < 1 or max_per_principal < 1:
            raise ValueError("max_pending and max_per_principal must be >= 1")
        if key is not None and len(key) < ARGUMENTS_KEY_BYTES:
            raise ValueError(f"the arguments key must have at least {ARGUMENTS_KEY_BYTES} bytes")
        self._key = key if key is not None else secrets.token_bytes(ARGUMENTS_KEY_BYTES)
        self._ttl = ttl
        self._max = max_pending
        self._share = max_per_principal
        self._wall = wall_clock
        self._redact = redactor or Redactor()
        self._items: dict[str, CallApproval] = {}  # by id, oldest first
        self._held: dict[str, dict[str, CallApproval]] = {}  # by principal, then id

    async def require(self, exchange: Exchange, by: Literal["human", "admin"] = "human") -> None:
        """Return when a human approved this call (an admin, for ``by="admin"``); raise
        ``Denied`` otherwise."""
        if by == "human" and not exchange.modern and "elicitation" in exchange.client_capabilities:
            await self._ask(exchange)
            return
        self._expire()
        key = self._key_of(exchange)
        for item in self._held.get(key[0], {}).values():
            if (item.tool, item.arguments_hmac) != key[1:]:
                continue
            exchange.detail.update(approvalId=item.id, arguments_hmac=item.arguments_hmac)
            if item.state == "approved":
                self._drop(item)  # one approval, one call
                exchange.detail["approvedBy"] = item.decided_by
                return
            if item.state == "rejected":
                raise Denied("approval rejected", message="Approval rejected")
            raise _pending(item)
        item = CallApproval(
            id="apr_" + secrets.token_urlsafe(12),
            principal=key[0],
            tool=key[1],
            arguments_hmac=key[2],
            arguments_preview=self._preview(exchange.arguments),
            created=self._wall(),
        )
        self._add(item)
        exchange.detail.update(approvalId=item.id, arguments_hmac=item.arguments_hmac)
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

    def _preview(self, arguments: JSONObject) -> str:
        """``arguments`` as canonical JSON, redacted first (a cut could split a secret past
        recognition), then cut to ``MAX_ARGUMENTS_PREVIEW`` characters, ending in "…"."""
        text = msgspec.json.encode(self._redact(arguments), order="sorted").decode()
        if len(text) <= MAX_ARGUMENTS_PREVIEW:
            return text
        return text[: MAX_ARGUMENTS_PREVIEW - 1] + "…"

    def _add(self, item: CallApproval) -> None:
        """Remember ``item``, first making room (see the module docstring)."""
        mine = self._held.get(item.principal, {})
        if len(mine) >= self._share:
            self._drop(_first_to_go(mine))
        elif len(self._items) >= self._max:
            # The most entries; on a tie, the newcomer's own before anyone else's.
            most = max(self._held.items(), key=lambda p: (len(p[1]), p[0] == item.principal))
            self._drop(_first_to_go(most[1]))
        # Looked up again: dropping a principal's last entry forgets its table.
        self._held.setdefault(item.principal, {})[item.id] = self._items[item.id] = item

    def _drop(self, item: CallApproval) -> None:
        del self._items[item.id]
        mine = self._held[item.principal]
        del mine[item.id]
        if not mine:
            del self._held[item.principal]

    def _expire(self) -> None:
        cutoff = self._wall() - self._ttl
        for item in [v for v in self._items.values() if v.since() < cutoff]:
            self._drop(item)

    async def _ask(self, exchange: Exchange) -> None:
        target = exchange.target.name if exchange.target is not None else exchange.method
        # What the answer allows: this tool with these arguments (redacted, bounded), never
        # a yes that reads the same for another call (TC-6).
        arguments = exchange.arguments
        shown = f" with {self._preview(arguments)}" if arguments else ""
        params: JSONObject = {
            "message": f"Allow {exchange.principal.id} to run {target}{shown}?",
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
        exchange.detail.update(approvedBy="elicitation", arguments_hmac=self._digest(arguments))

    def _digest(self, arguments: JSONObject) -> str:
        """HMAC-SHA-256 (hex), keyed by the gate's key, of ``arguments`` as canonical JSON:
        keys sorted at every depth, no whitespace, UTF-8."""
        canonical = msgspec.json.encode(arguments, order="sorted")
        return hmac.new(self._key, canonical, hashlib.sha256).hexdigest()

    def _key_of(self, exchange: Exchange) -> tuple[str, str, str]:
        """What an entry is for: (principal, tool, digest of the arguments)."""
        tool = exchange.target.name if exchange.target is not None else exchange.method
        return (exchange.principal.id, tool, self._digest(exchange.arguments))


def _first_to_go(entries: dict[str, CallApproval]) -> CallApproval:
    """Of one principal's entries, the one to forget: its oldest pending, else its oldest
    rejected, else its approved one decided longest ago."""
    return min(entries.values(), key=lambda item: (_KEEP[item.state], item.since()))


def _pending(item: CallApproval) -> Denied:
    return Denied("approval pending", message="Approval required", data={"approvalId": item.id})
