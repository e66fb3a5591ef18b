"""The admin API's approval backend over the gateway's three kinds of pending approval: calls
waiting for a human (TC-6, ids ``apr_...``, listed with the digest of the arguments an
approval is bound to and their redacted preview), tool definitions held by pinning (TC-1..TC-3,
ids ``pin:<server>:<tool>:<sha256>``) and prompts, resources and templates held by the poison
screen (TC-1, ids ``<kind>:<server>:<sha256>``: a URI may be longer than an id may be, and
the hash, which covers the name, is what an approval is for). An id from the path is only
ever compared with the ids held. Deciding a definition audits it (``on_decided``, kind
``pin``) and rebuilds the catalog (``on_catalog_changed``), so the decision shows at once.
"""

from __future__ import annotations

import builtins
from collections.abc import Awaitable, Callable, Sequence
from typing import Final, NoReturn, TypeAlias

import anyio
import msgspec

from bastion.admin.backends import ApprovalRecord, ApprovalStatus
from bastion.admin.errors import Conflict, NotFound
from bastion.guard.held import DefinitionDecision, DefinitionKind, HeldDefinitions
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


def _tool_id(item: PendingTool) -> str:
    return f"pin:{item.server}:{item.tool}:{item.hash}"


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

    async def pending(self) -> Sequence[ApprovalRecord]:
        records: builtins.list[ApprovalRecord] = [
            _call_record(item, "pending") for item in self._calls.pending()
        ]
        if self._pins is not None:
            held = await anyio.to_thread.run_sync(self._pins.pending)
            records += [_tool_record(item, "pending") for item in held]
        if self._definitions is not None:
            waiting = await anyio.to_thread.run_sync(self._definitions.pending)
            records += [
                ApprovalRecord(
                    id=_definition_id(item.kind, item.server, item.hash),
                    principal=f"upstream:{item.server}",
                    tool=item.name,
                    requested_at=item.first_seen,
                    kind=item.kind,
                    server=item.server,
                    hash=item.hash,
                    findings=tuple(msgspec.to_builtins(item.findings)),
                    definition=item.definition,
                )
                for item in waiting
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
        kind = approval_id.partition(":")[0]
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
        # pin:<server>:<tool>:<hash>: server names have no ':' and hashes are hex, so a
        # tool name may hold ':' itself.
        server, _, rest = approval_id.removeprefix("pin:").partition(":")
        tool, _, digest = rest.rpartition(":")
        held = await anyio.to_thread.run_sync(pins.pending, server)
        item = next((p for p in held if _tool_id(p) == approval_id), None)
        decide = pins.approve if status == "approved" else pins.reject
        if item is None:
            await _missing(lambda: pins.decided(server, tool, digest))
        await self._settle(lambda: decide(server, tool, digest, by=by))
        await self._changed(("tools",))
        return _tool_record(item, status, by)

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
        waiting = await anyio.to_thread.run_sync(store.pending)
        item = next(
            (p for p in waiting if _definition_id(p.kind, p.server, p.hash) == approval_id), None
        )
        decide = store.approve if status == "approved" else store.reject
        if item is None:
            await _missing(lambda: store.decided(server, kind, digest))
        await self._settle(lambda: decide(server, kind, digest, by=by))
        await self._changed((announce,))
        return ApprovalRecord(
            id=approval_id,
            principal=f"upstream:{server}",
            tool=item.name,
            requested_at=item.first_seen,
            status=status,
            decided_by=by,
            kind=kind,
            server=server,
            hash=digest,
            findings=tuple(msgspec.to_builtins(item.findings)),
            definition=item.definition,
        )


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
        arguments_sha256=item.arguments_sha256,
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


async def _missing(decided: Callable[[], bool]) -> NoReturn:
    """Nothing is pending under the id asked for: 409 if it was decided already, else 404.

    Raises:
        Conflict, NotFound: as above.
    """
    if await anyio.to_thread.run_sync(decided):
        raise Conflict("already decided")
    raise NotFound("no such pending approval")
