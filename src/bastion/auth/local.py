"""The local user: the principal of stdio and of a loopback gateway without credentials.

On stdio the client is a child process of the user who started it, so the operating system
has already authenticated it; its identity comes from configuration, defaulting to the login
name, and its id ``local:<name>``, which the built-in default policy allows everything. Its
roles are ``local`` (reserved: no other credential carries it, ``bastion.auth.roles``) and
``admin`` (the owner of a gateway without credentials administers it, through the admin API
on loopback); any policy file replaces that default (deny by default applies to it too).
"""

from __future__ import annotations

import getpass
import time

from bastion.auth.principal import Principal
from bastion.auth.roles import ADMIN_ROLE, LOCAL_ROLE

__all__ = ["LOCAL_ROLE", "local_principal"]


def local_principal(name: str | None = None) -> Principal:
    user = name or _login_name()
    return Principal(
        id=f"local:{user}",
        credential_id=f"local:{user}",
        method="local",
        roles=(LOCAL_ROLE, ADMIN_ROLE),
        authenticated_at=time.time(),
    )


def _login_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers with arbitrary uids)
        return "user"
