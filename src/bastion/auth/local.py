"""The local user: the principal of stdio and of a loopback gateway without credentials.

On stdio the client is a child process of the user who started it, so the operating system
has already authenticated it; its identity comes from configuration, defaulting to the login
name. Its roles are ``local``, which the built-in default policy allows everything, and
``admin`` (the owner of a gateway without credentials administers it, through the admin API
on loopback); any policy file replaces that default (deny by default applies to it too).
"""

from __future__ import annotations

import getpass
import time
from typing import Final

from bastion.auth.principal import Principal

__all__ = ["LOCAL_ROLE", "local_principal"]

LOCAL_ROLE: Final = "local"


def local_principal(name: str | None = None) -> Principal:
    user = name or _login_name()
    return Principal(
        id=f"local:{user}",
        credential_id=f"local:{user}",
        method="local",
        roles=(LOCAL_ROLE, "admin"),
        authenticated_at=time.time(),
    )


def _login_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers with arbitrary uids)
        return "user"
