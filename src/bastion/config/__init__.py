"""Bastion's configuration: one frozen typed tree, loaded and checked once at the CLI edge.

``load_config``/``parse_config`` read ``bastion.yaml``; ``import_client_config`` and
friends convert an MCP client's server list (Claude Desktop, Cursor, Claude Code, VS Code)
into one. Nothing here reads the process environment or exits.
"""

from __future__ import annotations

from bastion.config.importer import (
    ImportResult,
    import_client_config,
    load_client_config,
    parse_client_config,
    to_yaml,
)
from bastion.config.load import load_config, parse_config
from bastion.config.model import Config, GatewaySettings, ServerConfig

__all__ = [
    "Config",
    "GatewaySettings",
    "ImportResult",
    "ServerConfig",
    "import_client_config",
    "load_client_config",
    "load_config",
    "parse_client_config",
    "parse_config",
    "to_yaml",
]
