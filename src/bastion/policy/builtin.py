"""The policy a gateway uses when its configuration names no policy file.

It allows the local user (stdio, or a loopback face without credentials: principal
``local:<name>``) and the key a running gateway lends the local hub (``apikey:hub-local-...``)
everything, and nobody else anything: an API key or token holder is denied until a policy
file grants their role something (deny by default, AZ-1). It matches them by principal id,
not by the role ``local`` alone; that role is reserved too (``bastion.auth.roles``: no JWT,
mTLS account or user-made key carries it, and no user-made key has a ``hub-local-`` name).
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
    principals: ["local:*", "apikey:hub-local-*"]
    methods: ["**"]
    description: the local user may do everything (no policy file is configured)
"""


def builtin_policy() -> Policy:
    return Policy(parse_policy(BUILTIN_POLICY, source="<built-in policy>"))
