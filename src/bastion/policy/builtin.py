"""The policy a gateway uses when its configuration names no policy file.

It allows the local user (role ``local``: stdio, or a loopback face without credentials)
everything, and nobody else anything: an API key or token holder is denied until a policy
file grants their role something (deny by default, AZ-1).
"""

from __future__ import annotations

from typing import Final

from bastion.policy.engine import Policy
from bastion.policy.load import parse_policy

__all__ = ["BUILTIN_POLICY", "builtin_policy"]

BUILTIN_POLICY: Final = """\
version: 1
roles:
  local: {description: "the local user: stdio, or a loopback gateway without credentials"}
rules:
  - id: builtin-local-user
    effect: allow
    roles: [local]
    methods: ["**"]
    description: the local user may do everything (no policy file is configured)
"""


def builtin_policy() -> Policy:
    return Policy(parse_policy(BUILTIN_POLICY, source="<built-in policy>"))
