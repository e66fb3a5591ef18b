"""The seams between the admin API and what it administers, as typing Protocols.

The API knows only these: a key store, the policy, pending approvals, the audit log and the
upstreams. ``FilePolicies`` and ``SqliteAudit`` are the real policy and audit backends (in
their own modules); keys and approvals are wired by the gateway to its stores. Backends raise
``AdminError`` subclasses (``NotFound``, ``Conflict``, ``InvalidPolicy``) with client-safe
messages; anything else becomes a generic 500.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Final, Literal, Protocol

import msgspec

from bastion._types import JSONObject
from bastion.audit import VerifyReport

__all__ = [
    "MAX_APPROVALS_LIMIT",
    "MAX_AUDIT_LIMIT",
    "MAX_CURSOR",
    "AdminBackends",
    "ApprovalBackend",
    "ApprovalKind",
    "ApprovalPage",
    "ApprovalRecord",
    "ApprovalStatus",
    "AuditBackend",
    "AuditEntry",
    "AuditFilters",
    "AuditPage",
    "KeyBackend",
    "KeyRecord",
    "PolicyBackend",
    "PolicyDocument",
    "PolicyFileState",
    "UpstreamBackend",
]

MAX_AUDIT_LIMIT: Final = 1000  # records per audit page; the client pages with since_seq
MAX_APPROVALS_LIMIT: Final = 500  # approvals per page; the client pages with next_cursor
MAX_CURSOR: Final = 256  # characters in an approvals cursor (the backend's opaque token)

_Text = Annotated[str, msgspec.Meta(max_length=512)]


class KeyRecord(msgspec.Struct, frozen=True, kw_only=True):
    """An API key as the API shows it: never the secret, only its non-secret prefix."""

    id: str
    name: str
    prefix: str
    roles: tuple[str, ...] = ()
    created_at: float
    expires_at: float | None = None
    revoked: bool = False
    break_glass: bool = False  # the loudly audited emergency admin key (README: break-glass)


class KeyBackend(Protocol):
    async def list(self) -> Sequence[KeyRecord]: ...

    async def create(
        self,
        name: str,
        roles: tuple[str, ...],
        expires_in: float | None,
        *,
        expires_by: float | None = None,
    ) -> tuple[KeyRecord, str]:
        """A new key and its plaintext secret (shown once, never stored); it expires at
        ``expires_by`` (epoch seconds) at the latest, whatever ``expires_in`` says."""
        ...

    async def rotate(
        self, key_id: str, overlap: float, *, expires_by: float | None = None
    ) -> tuple[KeyRecord, str]:
        """A successor key, expiring at ``expires_by`` at the latest; the old one stays
        valid ``overlap`` more seconds.

        Raises:
            NotFound: no such key. Conflict: it is revoked.
        """
        ...

    async def revoke(self, key_id: str) -> Sequence[KeyRecord]:
        """Revoke the key ``key_id`` (or every unrevoked key of that name); what was revoked.

        Raises:
            NotFound: no such key."""
        ...


class PolicyFileState(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The policy file on disk when it is not the policy in force: its version (sha-256 of
    its bytes; None when it cannot be read) and whether it is ``pending`` (it loads, and the
    gateway applies it at its next polls) or ``refused`` (``error`` says why)."""

    version: str | None
    status: Literal["pending", "refused"]
    error: str | None = None


class PolicyDocument(msgspec.Struct, frozen=True, kw_only=True):
    """The policy in force: the text it was compiled from, a version (the sha-256 of those
    bytes) and its rule count; ``file`` when the policy file on disk says something else."""

    text: str
    version: str
    rules: int
    file: PolicyFileState | None = None


class PolicyBackend(Protocol):
    async def get(self) -> PolicyDocument: ...

    async def put(self, text: str) -> PolicyDocument:
        """Validate ``text`` (YAML, or JSON, which the same loader reads) and replace the
        policy atomically; on any failure nothing changes (the file neither).

        Raises:
            InvalidPolicy: naming the problem (``rules[2].effect: ...``).
            Conflict: the policy cannot be replaced as things are (others may change its
                file), or its file changed meanwhile.
        """
        ...


ApprovalStatus = Literal["pending", "approved", "rejected"]
# A call waiting for a human (TC-6), or an upstream's definition held by the guard (TC-1..3).
ApprovalKind = Literal["call", "tool", "prompt", "resource", "resource-template"]


class ApprovalRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A call held for a human decision (policy ``approval:``): the digest of its arguments,
    which an approval is bound to, and a redacted, bounded preview of them; or a held
    definition: ``principal`` is ``upstream:<server>`` and ``tool`` its name (a resource's
    URI, a template's URI template), with what held it and what was offered."""

    id: str
    principal: str
    tool: str
    requested_at: float
    status: ApprovalStatus = "pending"
    decided_by: str | None = None
    kind: ApprovalKind = "call"
    server: str | None = None  # a held definition's upstream
    hash: str | None = None  # SHA-256 of the held definition (what an approval is for)
    findings: tuple[JSONObject, ...] = ()  # why it was held (the guard's findings)
    definition: JSONObject | None = None  # as the upstream offered it
    arguments_hmac: str | None = None  # a call's: keyed digest of its canonical JSON arguments
    arguments_preview: str | None = None  # a call's arguments, redacted and cut short


class ApprovalPage(msgspec.Struct, frozen=True, kw_only=True):
    """Pending approvals in listing order; ``next_cursor`` lists the ones after (None: no
    more)."""

    approvals: tuple[ApprovalRecord, ...]
    next_cursor: str | None = None


class ApprovalBackend(Protocol):
    async def pending(self, limit: int, cursor: str | None = None) -> ApprovalPage:
        """At most ``limit`` pending approvals, after those ``cursor`` ended.

        Raises:
            InvalidInput: ``cursor`` is none this backend gave.
        """
        ...

    async def approve(self, approval_id: str, by: str) -> ApprovalRecord:
        """Raises: NotFound: no such approval. Conflict: already decided."""
        ...

    async def reject(self, approval_id: str, by: str) -> ApprovalRecord:
        """Raises: NotFound: no such approval. Conflict: already decided."""
        ...


class AuditFilters(msgspec.Struct, frozen=True, kw_only=True):
    since_seq: int = 0
    principal: _Text | None = None
    method: _Text | None = None


class AuditEntry(msgspec.Struct, frozen=True, kw_only=True):
    seq: int
    hash: str
    record: JSONObject


class AuditPage(msgspec.Struct, frozen=True, kw_only=True):
    """Records in seq order; ``next_since_seq`` is what to pass for the next page."""

    records: tuple[AuditEntry, ...]
    next_since_seq: int


class AuditBackend(Protocol):
    async def query(self, filters: AuditFilters, limit: int) -> AuditPage: ...

    async def verify(self) -> VerifyReport: ...


class UpstreamBackend(Protocol):
    """``Gateway`` satisfies this as it is."""

    def status(self) -> list[JSONObject]: ...


@dataclass(frozen=True, slots=True)
class AdminBackends:
    keys: KeyBackend
    policies: PolicyBackend
    approvals: ApprovalBackend
    audit: AuditBackend
    upstreams: UpstreamBackend
