"""Bastion: a secure MCP gateway. The package facade holds only the version."""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
