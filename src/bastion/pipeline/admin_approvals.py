"""The admin API's approval backend over the gateway's three kinds of pending approval: calls
waiting for a human (TC-6, ids ``apr_...``, listed with the digest of the arguments an
approval is bound to and their redacted preview), tool definitions held by pinning (TC-1..TC-3)
and prompts, resources and templates held by the poison screen (TC-1). A held definition's
id is ``<kind>:<server>:<sha256>`` (kind ``tool``, ``prompt``, ``resource`` or
``resource-template``): fixed in length, as a name or URI may be longer than an id may be,
and the hash, which covers the name, is what an approval is for. A tool's id listed before
(``pin:<server>:<tool>:<sha256>``) still decides it. An id from the path is only ever
compared with the ids held, and a decision reads its own row alone. Deciding a definition
audits it (``on_decided``, kind ``pin``) and rebuilds the catalog (``on_catalog_changed``),
so the decision shows at once. The listing is paged (DS-4): calls, then tools, then the
other definitions, each oldest first; a cursor is the last listed one's place in that order
(opaque to clients: base64url of JSON), so deciding one between pages skips nothing.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable
from typing import Final, NoReturn, TypeAlias

import anyio
import msgspec

from bastion.admin.backends import ApprovalPage, ApprovalRecord, ApprovalStatus
from bastion.admin.errors import Conflict, InvalidInput, NotFound
from bastion.guard.held import (
    DefinitionDecision,
    DefinitionKind,
    HeldDefinitions,
    PendingDefinition,
)
from bastion.guard.pins import NotPending, PendingTool, PinEvent, PinStore
from bastion.pipeline.approvals import ApprovalGate, CallApproval

__all__ = ["DEFINITION_KINDS", "CatalogChanged", "GatewayApprovals", "PinDecided"]

# The lists to rebuild and announce after a decision about each kind of definition.
DEFINITION_KINDS: Final[dict[str, tuple[DefinitionKind, str]]] = {
    "prompt": ("prompt", "prompts"),
    "resource": ("resource", "resources"),
    "resource-template": ("resource-template", "resources"),
}
CatalogChanged: TypeAlias = Callable[[tuple[str, ...]], Awaitable[None]]  # lists to announce
PinDecided: TypeAlias = Callable[[PinEvent | DefinitionDecision], Awaitable[None]]
# Where a record is in the listing: section (0 calls, 1 tools, 2 other definitions), time
# (requested, first seen), row id, call id.
_Place: TypeAlias = tuple[int, float, int, str]
_CURSOR: Final = msgspec.json.Decoder(tuple[int, float, int, str])


def _tool_id(item: PendingTool) -> str:
    return f"tool:{item.server}:{item.hash}"


def _definition_id(kind: str, server: str, digest: str) -> str:
    return f"{kind}:{server}:{digest}"


async def _ignore(_: PinEvent | DefinitionDecision) -> None:
    return None


class GatewayApprovals:
    """``ApprovalBackend`` over the ``ApprovalGate``, the ``PinStore`` and the
    ``HeldDefinitions`` (either store may be absent: pinning or the screen is off)."""

    def __init__(
        self,
        calls: ApprovalGate,
        pins: PinStore | None,
        on_catalog_changed: CatalogChanged,
        *,
        definitions: HeldDefinitions | None = None,
        on_decided: PinDecided = _ignore,
    ) -> None:
        self._calls = calls
        self._pins = pins
        self._definitions = definitions
        self._changed = on_catalog_changed
        self._decided = on_decided

    async def pending(self, limit: int, cursor: str | None = None) -> ApprovalPage:
        after = _place(cursor)
        found: list[tuple[_Place, ApprovalRecord]] = []
        want = limit + 1  # one more says whether there is a next page
        if after[0] == 0:
            calls = sorted(
                (
                    ((0, item.created, 0, item.id), _call_record(item, "pending"))
                    for item in self._calls.pending()
                ),
                key=lambda entry: entry[0],
            )
            found += [(place, record) for place, record in calls if place > after][:want]
        if self._pins is not None and len(found) < want and after[0] <= 1:
            pins, rows = self._pins, want - len(found)
            since = after[1:3] if after[0] == 1 else None
            held = await anyio.to_thread.run_sync(lambda: pins.pending(limit=rows, after=since))
            found += [((1, *item.key(), ""), _tool_record(item, "pending")) for item in held]
        if self._definitions is not None and len(found) < want:
            store, rows = self._definitions, want - len(found)
            since = after[1:3] if after[0] == 2 else (float("-inf"), 0)
            waiting = await anyio.to_thread.run_sync(lambda: store.pending(limit=rows, after=since))
            found += [
                ((2, *item.key(), ""), _definition_record(item, "pending")) for item in waiting
            ]
        if len(found) <= limit:
            return ApprovalPage(approvals=tuple(record for _, record in found))
        return ApprovalPage(
            approvals=tuple(record for _, record in found[:limit]),
            next_cursor=_cursor(found[limit - 1][0]),
        )

    async def approve(self, approval_id: str, by: str) -> ApprovalRecord:
        return await self._decide(approval_id, by, approve=True)

    async def reject(self, approval_id: str, by: str) -> ApprovalRecord:
        return await self._decide(approval_id, by, approve=False)

    async def _decide(self, approval_id: str, by: str, *, approve: bool) -> ApprovalRecord:
        """404 for an id never held (or forgotten), 409 for one already decided."""
        status: ApprovalStatus = "approved" if approve else "rejected"
        kind = approval_id.partition(":")[0]
        if kind in {"tool", "pin"} and self._pins is not None:
            return await self._decide_pin(self._pins, approval_id, by, status)
        if kind in DEFINITION_KINDS and self._definitions is not None:
            return await self._decide_definition(self._definitions, approval_id, by, status)
        item = self._calls.get(approval_id)
        if item is None:
            raise NotFound("no such pending approval")
        if self._calls.decide(approval_id, approve=approve, by=by) is None:
            raise Conflict("already decided")
        return _call_record(item, status, by)

    async def _decide_pin(
        self, pins: PinStore, approval_id: str, by: str, status: ApprovalStatus
    ) -> ApprovalRecord:
        # tool:<server>:<hash>, or pin:<server>:<tool>:<hash> (as listed before): server names
        # have no ':' and hashes are hex, so a tool name may hold ':' itself.
        kind, _, rest = approval_id.partition(":")
        server, _, rest = rest.partition(":")
        tool, _, digest = rest.rpartition(":") if kind == "pin" else (None, "", rest)
        item = await anyio.to_thread.run_sync(lambda: pins.held_tool(server, digest))
        if item is None or tool not in {None, item.tool}:
            await _missing(lambda: pins.decided(server, tool, digest))
        decide = pins.approve if status == "approved" else pins.reject
        await self._settle(lambda: decide(server, item.tool, digest, by=by))
        await self._changed(("tools",))
        return msgspec.structs.replace(_tool_record(item, status, by), id=approval_id)

    async def _settle(self, decide: Callable[[], PinEvent | DefinitionDecision]) -> None:
        """Decide a pending item (``decide``, in a thread) and audit the decision.

        Raises:
            Conflict: it was decided (or changed again) since it was read.
        """
        try:
            event = await anyio.to_thread.run_sync(decide)
        except NotPending as exc:
            raise Conflict("already decided") from exc
        await self._decided(event)

    async def _decide_definition(
        self, store: HeldDefinitions, approval_id: str, by: str, status: ApprovalStatus
    ) -> ApprovalRecord:
        # <kind>:<server>:<hash>: none of the three holds a ':'.
        name, _, rest = approval_id.partition(":")
        kind, announce = DEFINITION_KINDS[name]
        server, _, digest = rest.partition(":")
        item = await anyio.to_thread.run_sync(lambda: store.held(server, kind, digest))
        if item is None:
            await _missing(lambda: store.decided(server, kind, digest))
        decide = store.approve if status == "approved" else store.reject
        await self._settle(lambda: decide(server, kind, digest, by=by))
        await self._changed((announce,))
        return _definition_record(item, status, by)


def _call_record(
    item: CallApproval, status: ApprovalStatus, by: str | None = None
) -> ApprovalRecord:
    """A call as the API lists it: what an approval would allow (tool, caller, the digest of
    the arguments it is bound to, their redacted preview)."""
    return ApprovalRecord(
        id=item.id,
        principal=item.principal,
        tool=item.tool,
        requested_at=item.created,
        status=status,
        decided_by=by,
        arguments_hmac=item.arguments_hmac,
        arguments_preview=item.arguments_preview,
    )


def _tool_record(
    item: PendingTool, status: ApprovalStatus, by: str | None = None
) -> ApprovalRecord:
    return ApprovalRecord(
        id=_tool_id(item),
        principal=f"upstream:{item.server}",
        tool=item.tool,
        requested_at=item.first_seen,
        status=status,
        decided_by=by,
        kind="tool",
        server=item.server,
        hash=item.hash,
        findings=tuple(msgspec.to_builtins(item.findings)),
        definition=item.definition,
    )


def _definition_record(
    item: PendingDefinition, status: ApprovalStatus, by: str | None = None
) -> ApprovalRecord:
    return ApprovalRecord(
        id=_definition_id(item.kind, item.server, item.hash),
        principal=f"upstream:{item.server}",
        tool=item.name,
        requested_at=item.first_seen,
        status=status,
        decided_by=by,
        kind=item.kind,
        server=item.server,
        hash=item.hash,
        findings=tuple(msgspec.to_builtins(item.findings)),
        definition=item.definition,
    )


def _place(cursor: str | None) -> _Place:
    """Where the page after ``cursor`` starts (the start of the listing for None).

    Raises:
        InvalidInput: not a cursor this backend gave.
    """
    if cursor is None:
        return (0, float("-inf"), 0, "")
    try:
        place = _CURSOR.decode(base64.urlsafe_b64decode(cursor.encode("ascii")))
    except (ValueError, binascii.Error, msgspec.DecodeError) as exc:
        raise InvalidInput("invalid cursor: pass next_cursor as listed") from exc
    if place[0] not in {0, 1, 2}:
        raise InvalidInput("invalid cursor: pass next_cursor as listed")
    return place


def _cursor(place: _Place) -> str:
    return base64.urlsafe_b64encode(msgspec.json.encode(place)).decode("ascii")


async def _missing(decided: Callable[[], bool]) -> NoReturn:
    """Nothing is pending under the id asked for: 409 if it was decided already, else 404.

    Raises:
        Conflict, NotFound: as above.
    """
    if await anyio.to_thread.run_sync(decided):
        raise Conflict("already decided")
    raise NotFound("no such pending approval")
