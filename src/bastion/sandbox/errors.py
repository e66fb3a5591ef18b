"""The sandbox's errors, under the one ``BastionError`` root.

BastionError
└── SandboxError              a command could not be sandboxed as asked (bad spec, setup)
    └── SandboxUnavailable    the backend is missing here (no bwrap, no engine, no root)
"""

from __future__ import annotations

from bastion.errors import BastionError

__all__ = ["SandboxError", "SandboxUnavailable"]


class SandboxError(BastionError):
    message = "Sandbox error"


class SandboxUnavailable(SandboxError):
    message = "Sandbox unavailable"
