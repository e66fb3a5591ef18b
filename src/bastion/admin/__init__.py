"""The admin REST API under ``/api/v1/`` (AZ-6, AD-4): keys, policy, approvals, audit and
upstreams, behind the gateway's authenticator and an admin (or auditor) role.

``AdminApi`` is the ASGI app; ``AdminBackends`` bundles the Protocols it administers.
``FilePolicies`` and ``SqliteAudit`` are the real policy and audit backends;
``audit_events`` records admin actions into the audit log; ``OPENAPI`` documents it all.
"""

from __future__ import annotations

from bastion.admin.app import (
    ADMIN_ROLE,
    AUDITOR_ROLE,
    OPENAPI_PATH,
    RATE_LIMITED,
    AdminApi,
    AdminEvent,
    Admit,
    Authenticate,
    Challenge,
    bearer_challenge,
)
from bastion.admin.audit_sqlite import SqliteAudit
from bastion.admin.backends import (
    MAX_APPROVALS_LIMIT,
    MAX_AUDIT_LIMIT,
    AdminBackends,
    ApprovalBackend,
    ApprovalKind,
    ApprovalPage,
    ApprovalRecord,
    ApprovalStatus,
    AuditBackend,
    AuditEntry,
    AuditFilters,
    AuditPage,
    KeyBackend,
    KeyRecord,
    PolicyBackend,
    PolicyDocument,
    PolicyFileState,
    UpstreamBackend,
)
from bastion.admin.errors import AdminError, Conflict, InvalidInput, InvalidPolicy, NotFound
from bastion.admin.openapi import OPENAPI
from bastion.admin.policy_file import FilePolicies
from bastion.admin.routes import READ_ACTIONS, ROUTES, Route
from bastion.audit.admin_events import audit_events

__all__ = [  # noqa: RUF022 - plain sorted order, as tests/test_exported_members.py checks
    "ADMIN_ROLE",
    "AUDITOR_ROLE",
    "AdminApi",
    "AdminBackends",
    "AdminError",
    "AdminEvent",
    "Admit",
    "ApprovalBackend",
    "ApprovalKind",
    "ApprovalPage",
    "ApprovalRecord",
    "ApprovalStatus",
    "AuditBackend",
    "AuditEntry",
    "AuditFilters",
    "AuditPage",
    "Authenticate",
    "Challenge",
    "Conflict",
    "FilePolicies",
    "InvalidInput",
    "InvalidPolicy",
    "KeyBackend",
    "KeyRecord",
    "MAX_APPROVALS_LIMIT",
    "MAX_AUDIT_LIMIT",
    "NotFound",
    "OPENAPI",
    "OPENAPI_PATH",
    "PolicyBackend",
    "PolicyDocument",
    "PolicyFileState",
    "RATE_LIMITED",
    "READ_ACTIONS",
    "ROUTES",
    "Route",
    "SqliteAudit",
    "UpstreamBackend",
    "audit_events",
    "bearer_challenge",
]
