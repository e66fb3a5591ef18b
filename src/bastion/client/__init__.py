"""The client face: sessions with upstream MCP servers over any transport, in either era."""

from __future__ import annotations

from bastion.client.session import ClientHandlers, ClientSession, ServerInfo

__all__ = ["ClientHandlers", "ClientSession", "ServerInfo"]
