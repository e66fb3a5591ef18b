"""The sandbox: run one command isolated, with limits, streaming output and cancellation.

``Sandbox`` picks a backend (bubblewrap by default; gVisor, Docker, or ``none`` only when
configured in words) and starts ``ExecSpec``s as ``Execution``s; ``upstream_launch`` turns a
stdio MCP server's argv into a sandboxed one. See each module for what it owns.
"""

from __future__ import annotations

from bastion.sandbox.cgroups import CgroupSupport, detect_cgroups
from bastion.sandbox.egress import EgressProxy
from bastion.sandbox.errors import SandboxError, SandboxUnavailable
from bastion.sandbox.execution import Execution
from bastion.sandbox.launcher import SANDBOX_GID, SANDBOX_UID
from bastion.sandbox.limits import DEFAULT_PROFILE, PROFILES, Limits, Profile, resolve_limits
from bastion.sandbox.quota import create_quota_workspace, unmount_quota_workspace
from bastion.sandbox.sandbox import BACKEND_NAMES, Sandbox
from bastion.sandbox.spec import (
    LIMIT_REASONS,
    ExecResult,
    ExecSpec,
    LimitReason,
    NetworkPolicy,
    OutputChunk,
)
from bastion.sandbox.upstream import UpstreamLaunch, sandboxed_upstream

__all__ = [  # noqa: RUF022 - plain sorted order, as tests/test_exported_members.py checks
    "BACKEND_NAMES",
    "CgroupSupport",
    "DEFAULT_PROFILE",
    "EgressProxy",
    "ExecResult",
    "ExecSpec",
    "Execution",
    "LIMIT_REASONS",
    "LimitReason",
    "Limits",
    "NetworkPolicy",
    "OutputChunk",
    "PROFILES",
    "Profile",
    "SANDBOX_GID",
    "SANDBOX_UID",
    "Sandbox",
    "SandboxError",
    "SandboxUnavailable",
    "UpstreamLaunch",
    "create_quota_workspace",
    "detect_cgroups",
    "resolve_limits",
    "sandboxed_upstream",
    "unmount_quota_workspace",
]
