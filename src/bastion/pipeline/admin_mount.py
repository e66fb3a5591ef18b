"""The admin REST API (``/api/v1``) of a running gateway, over its real stores: API keys,
the policy file, held tool, prompt, resource and template definitions and calls awaiting
approval, the audit log, and the upstreams' status (AZ-6, AD-4). Admin callers authenticate
like ``/mcp`` callers, and a failed authentication is audited the same way (kind
``authentication``: credential id, reason, peer); every read, write and refusal is also
audited (kind ``admin``), and a decision about a held definition also as kind ``pin``.
Each principal's requests charge a token bucket of its own at ``limits.per_principal``, as
on ``/mcp`` (DS-3): over it, 429 with ``Retry-After``. Refusals (401 of an address, 403 and
429 of a principal, 429 of a throttled address) are counted by the audit log's ``refused``,
as on ``/mcp``, and an admin's reads by its ``repeated``: the first of each second written,
the others counted in a summary (AD-1, DS-4); only writes wait for their commit. Every
record of a break-glass key's request carries ``breakGlass: true``, as on ``/mcp``."""

from __future__ import annotations

import hashlib
import time
from typing import TYPE_CHECKING, Final

import msgspec

from bastion._types import JSONObject
from bastion.admin import (
    RATE_LIMITED,
    READ_ACTIONS,
    AdminApi,
    AdminBackends,
    Conflict,
    FilePolicies,
    PolicyDocument,
    SqliteAudit,
)
from bastion.audit.admin_events import admin_record
from bastion.audit.record import AuditRecord
from bastion.auth.keys import KeyStore
from bastion.auth.metadata import metadata_url, www_authenticate
from bastion.auth.principal import Principal
from bastion.guard.held import DefinitionDecision
from bastion.guard.pins import PinEvent
from bastion.limits import RateLimiter
from bastion.pipeline.admin_approvals import GatewayApprovals
from bastion.pipeline.admin_backends import FLUSH_TIMEOUT_S, LiveAudit, StoreKeys
from bastion.pipeline.authenticate import THROTTLED
from bastion.policy.builtin import BUILTIN_POLICY
from bastion.transport._http_asgi import Headers

if TYPE_CHECKING:
    from bastion.pipeline.runtime import Security
    from bastion.transport._http_asgi import Scope

__all__ = ["BuiltinPolicies", "admin_api"]

ADMIN_READS = "admin-reads"  # the tally an admin's reads are counted in, one per action
# Refusals counted per principal (or, without one, per client address) in bounded numbers.
TALLIED: Final = frozenset({"unauthenticated", "forbidden", RATE_LIMITED})


class BuiltinPolicies:
    """The policy backend of a gateway without a policy file: readable, not writable."""

    async def get(self) -> PolicyDocument:
        digest = hashlib.sha256(BUILTIN_POLICY.encode()).hexdigest()
        return PolicyDocument(text=BUILTIN_POLICY, version=digest, rules=1)

    async def put(self, text: str) -> PolicyDocument:
        raise Conflict("no policy file is configured (policy.file); the built-in one is fixed")


def admin_api(security: Security) -> AdminApi:
    config = security.config
    gateway = security.gateway

    http_auth = security.http_authenticator()
    rates = RateLimiter(config.limits)  # the admin API's own buckets, at the same rates

    def admit(principal: Principal) -> int:
        """DS-3: a principal's requests are limited here as on ``/mcp`` (0: admitted)."""
        return rates.check_principal(principal.id).retry_after

    async def authenticate(authorization: str | None, scope: Scope) -> Principal:
        """As on ``/mcp``, through the same ``HttpAuthenticator``: the ``Authorization``
        header or the TLS client certificate (mTLS service accounts), failed attempts
        counted against the client's address (AU-8) and audited as kind ``authentication``
        with the credential id, reason and peer (AD-1). Raises ``Unauthenticated`` (401);
        the local user on a gateway without auth."""
        return await http_auth.authenticate(Headers(scope), scope)

    def challenge(error: str | None) -> str:
        if config.auth is None:
            return "Bearer"
        url = metadata_url(config.auth.resource)
        if error in ("invalid_token", "insufficient_scope"):
            return www_authenticate(url, error=error)  # type: ignore[arg-type]
        return www_authenticate(url)

    async def on_event(
        principal: Principal | None,
        action: str,
        target: str | None,
        outcome: str,
        detail: JSONObject,
    ) -> None:
        log = security.audit
        if log is None:
            return
        record = admin_record(principal, action, target, outcome, detail, now=time.time())
        if outcome == THROTTLED:  # the address is in the ``authentication`` record
            await log.refused(("admin", THROTTLED), record)
            return
        if outcome in TALLIED:  # a flood of refusals costs a bounded number of records
            who = principal.id if principal is not None else str(detail.get("peer", "-"))
            await log.refused((who, f"admin-{outcome}"), record)
            return
        if outcome == "ok" and action in READ_ACTIONS and principal is not None:
            # A dashboard polling the API is recorded, in bounded numbers (DS-4).
            await log.repeated((principal.id, f"{ADMIN_READS}:{action}"), record)
            return
        await log.record(record)
        # An admin action is on disk before the API answers (it is rare; the wait is the
        # group commit interval), unless the disk is stuck: then answer after FLUSH_TIMEOUT_S.
        await log.flush(FLUSH_TIMEOUT_S)

    async def catalog_changed(announce: tuple[str, ...]) -> None:
        await gateway.rebuild(announce)

    async def pin_decided(event: PinEvent | DefinitionDecision) -> None:
        """AD-1: who decided what about which definition (its hash), as kind ``pin``."""
        log = security.audit
        if log is None:
            return
        await log.record(
            AuditRecord(
                time=time.time(),
                kind="pin",
                principal=event.by,
                method=f"pin.{event.action}",
                target=event.tool if isinstance(event, PinEvent) else event.name,
                decision="allow" if event.action == "approved" else "deny",
                outcome="ok",
                detail=msgspec.to_builtins(event),
            )
        )

    policies = (
        FilePolicies(security.policy_store)
        if security.policy_store is not None
        else BuiltinPolicies()
    )
    backends = AdminBackends(
        keys=StoreKeys(KeyStore(security.keys_db)),
        policies=policies,
        approvals=GatewayApprovals(
            security.approvals,
            security.pins,
            catalog_changed,
            definitions=security.held_definitions,
            on_decided=pin_decided,
        ),
        audit=LiveAudit(SqliteAudit(security.audit_path), lambda: security.audit),
        upstreams=gateway,
    )
    return AdminApi(authenticate, backends, audit=on_event, admit=admit, challenge=challenge)
