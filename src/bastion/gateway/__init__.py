"""The gateway: upstream MCP servers behind one endpoint, namespaced and forwarded.

``Gateway`` is imported lazily, so ``bastion.gateway.declared`` stays cheap to load."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bastion.gateway.declared import GATEWAY_CAPABILITIES

if TYPE_CHECKING:
    from bastion.gateway.gateway import Gateway

__all__ = ["GATEWAY_CAPABILITIES", "Gateway"]


def __getattr__(name: str) -> object:
    if name != "Gateway":
        raise AttributeError(f"module 'bastion.gateway' has no attribute {name!r}")
    from bastion.gateway.gateway import Gateway  # noqa: PLC0415 - lazy on purpose, see above

    globals()["Gateway"] = Gateway
    return Gateway
