"""Upstream MCP servers: starting them, supervising them, and calling them for a client."""

from __future__ import annotations

from bastion.upstream.replica import Replica, ReplicaState
from bastion.upstream.spawn import open_upstream

__all__ = ["Replica", "ReplicaState", "open_upstream"]
