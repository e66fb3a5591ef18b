"""The workspace server: shared directories where coding agents read, write, search and
collaborate over MCP, with every path confined to its workspace (see ``jail``)."""

from __future__ import annotations

from bastion.workspace.limits import WorkspaceLimits
from bastion.workspace.server import WorkspaceServer

__all__ = ["WorkspaceLimits", "WorkspaceServer"]
