"""The security pipeline (issue 6): rate-limit, authorize, validate, route and sanitise every
request, and audit it in ``finally``; built once at start-up from the configuration (the
order, and why the principal's bucket comes before authorize: ``pipeline.build``)."""

from __future__ import annotations

from bastion.pipeline.approvals import ApprovalGate, CallApproval
from bastion.pipeline.audit_stage import AuditSink, AuditStage, record_of
from bastion.pipeline.authorize import AuthorizeStage
from bastion.pipeline.connection import GuardedConnection, session_tag
from bastion.pipeline.exchange import Exchange
from bastion.pipeline.pipeline import Pipeline
from bastion.pipeline.stage import Handler, Stage, compose, route
from bastion.pipeline.targets import LIST_KINDS, target_of

__all__ = [  # noqa: RUF022 - plain sorted order, as tests/test_exported_members.py checks
    "ApprovalGate",
    "AuditSink",
    "AuditStage",
    "AuthorizeStage",
    "CallApproval",
    "Exchange",
    "GuardedConnection",
    "Handler",
    "LIST_KINDS",
    "Pipeline",
    "Stage",
    "compose",
    "record_of",
    "route",
    "session_tag",
    "target_of",
]
