"""Authorization policy (AZ-1..AZ-3): load a policy file, compile it, decide requests.

A leaf package: it knows nothing of transports. ``Policy.decide`` is pure; ``PolicyStore``
holds the current policy and reloads it from its file.
"""

from __future__ import annotations

from bastion.policy.decision import (
    DEFAULT_DENY,
    INVALID_NAME,
    Approval,
    Decision,
    Obligation,
    PolicyRequest,
    RecentAuth,
    Target,
    TargetKind,
)
from bastion.policy.engine import CALL_METHODS, Policy, RuleTrace, listing_request, valid_name
from bastion.policy.load import load_policy_file, parse_policy
from bastion.policy.model import PolicyFile
from bastion.policy.store import PolicyStore, load_policy

__all__ = [  # noqa: RUF022 - plain sorted order, as tests/test_exported_members.py checks
    "Approval",
    "CALL_METHODS",
    "DEFAULT_DENY",
    "Decision",
    "INVALID_NAME",
    "Obligation",
    "Policy",
    "PolicyFile",
    "PolicyRequest",
    "PolicyStore",
    "RecentAuth",
    "RuleTrace",
    "Target",
    "TargetKind",
    "listing_request",
    "load_policy",
    "load_policy_file",
    "parse_policy",
    "valid_name",
]
