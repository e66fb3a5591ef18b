"""The local user: the principal of stdio and of a loopback gateway without credentials.

On stdio the client is a child process of the user who started it, so the operating system
has already authenticated it; its identity is the name of the process's effective uid (its
passwd entry; ``uid<N>`` without one), never ``$LOGNAME`` or ``$USER``, which whoever starts
the process sets (AD-1). Its id is ``local:<name>``, which the built-in default policy allows
everything. Its roles are ``local`` (reserved: no other credential carries it,
``bastion.auth.roles``) and ``admin`` (the owner of a gateway without credentials
administers it, through the admin API on loopback); any policy file replaces that default
(deny by default applies to it too).
"""

from __future__ import annotations

import getpass
import os
import time

from bastion.auth.principal import Principal
from bastion.auth.roles import ADMIN_ROLE, LOCAL_ROLE

__all__ = ["LOCAL_ROLE", "local_principal"]


def local_principal(name: str | None = None) -> Principal:
    user = name or _os_user_name()
    return Principal(
        id=f"local:{user}",
        credential_id=f"local:{user}",
        method="local",
        roles=(LOCAL_ROLE, ADMIN_ROLE),
        authenticated_at=time.time(),
    )


def _os_user_name() -> str:
    try:
        import pwd  # noqa: PLC0415 - POSIX only
    except ImportError:  # Windows has no uids: the account name
        return getpass.getuser()
    uid = os.geteuid()
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:  # no passwd entry (containers with arbitrary uids)
        return f"uid{uid}"
