"""What the gateway declares before any upstream is up (pure data, cheap to import: the
stdio fast start answers ``initialize`` with it before the rest of Bastion loads)."""

from __future__ import annotations

from typing import Final

__all__ = ["GATEWAY_CAPABILITIES", "GATEWAY_NAME"]

GATEWAY_NAME: Final = "bastion"

# A client may connect before any upstream is ready (bastion stdio answers initialize at
# once), and must still know to ask for lists and watch for changes.
GATEWAY_CAPABILITIES: Final[dict[str, dict[str, bool]]] = {
    "tools": {"listChanged": True},
    "resources": {"subscribe": True, "listChanged": True},
    "prompts": {"listChanged": True},
    "completions": {},
    "logging": {},
}
