"""The gateway: upstream MCP servers behind one endpoint, namespaced and forwarded."""

from __future__ import annotations

from bastion.gateway.gateway import GATEWAY_CAPABILITIES, Gateway

__all__ = ["GATEWAY_CAPABILITIES", "Gateway"]
