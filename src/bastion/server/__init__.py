"""An MCP server framework on the protocol core: a registry of tools, resources and prompts
(``ServerApp``), what a handler may do (``ToolContext``), and the per-connection logic that
serves both protocol revisions (``ServerConnection``)."""

from __future__ import annotations

from bastion.server.connection import ServerConnection
from bastion.server.context import InputRequired, ToolContext
from bastion.server.registry import ServerApp

__all__ = ["InputRequired", "ServerApp", "ServerConnection", "ToolContext"]
