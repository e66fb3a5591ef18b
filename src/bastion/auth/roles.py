"""Roles with a meaning built into the gateway, and which credentials may carry them (AZ-5).

``local`` (``LOCAL_ROLE``) is the local user's (stdio, a loopback gateway without
credentials) and that of the key a running gateway lends the local hub. No credential a user
or an identity provider makes carries it: ``KeyStore.create`` refuses it (the hub's key is
made with ``reserved=True``), and it is dropped, with a warning, from a JWT's roles and from
an mTLS account's. The built-in policy matches the local user and the hub's key by principal
id, not by this role (``bastion.policy.builtin``).

``admin`` and ``auditor`` open the admin API (AZ-6). An API key or an mTLS account carries
them when an operator gave them (``bastion keys create --role admin``, an account's
``roles``). A JWT carries them only through ``auth.oidc.grants`` (``{admin:
[platform-admins]}``: the token's roles that grant each); a role of the token itself named
``admin`` or ``auditor`` is dropped, so an IdP group that happens to have that name grants
nothing.

``NAME_PATTERN`` is what an API key's name and each of its roles may be; the admin API's
schemas (and its OpenAPI document) say the same.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Final

__all__ = [
    "ADMIN_API_ROLES",
    "ADMIN_ROLE",
    "AUDITOR_ROLE",
    "HUB_KEY_PREFIX",
    "LOCAL_ROLE",
    "NAME_PATTERN",
    "RESERVED_ROLES",
    "reserved_refusal",
    "without_reserved",
]

NAME_PATTERN: Final = "[A-Za-z0-9][A-Za-z0-9_.@:-]{0,63}"  # a key's name, a key's role
LOCAL_ROLE: Final = "local"
ADMIN_ROLE: Final = "admin"
AUDITOR_ROLE: Final = "auditor"
RESERVED_ROLES: Final = frozenset({LOCAL_ROLE})
"""Roles no user-made API key, JWT or mTLS account may carry."""
ADMIN_API_ROLES: Final = frozenset({ADMIN_ROLE, AUDITOR_ROLE})
"""Roles a JWT carries only through ``auth.oidc.grants``."""
HUB_KEY_PREFIX: Final = "hub-local-"
"""Names of the keys a running gateway lends the local hub (no user-made key has one)."""

logger = logging.getLogger(__name__)


def reserved_refusal(name: str, roles: Iterable[str]) -> str | None:
    """Why a user-made API key named ``name`` may not carry ``roles``; None if it may."""
    if taken := sorted(RESERVED_ROLES.intersection(roles)):
        return f"role {taken[0]!r} is reserved for the local user"
    if name.startswith(HUB_KEY_PREFIX):
        return f"names starting {HUB_KEY_PREFIX!r} are the hub's keys"
    return None


def without_reserved(
    roles: Iterable[str], reserved: frozenset[str], *, source: str, warned: set[str]
) -> tuple[str, ...]:
    """``roles`` less ``reserved``, logging a warning (once per role in ``warned``) for each
    one dropped; ``source`` names where they came from."""
    kept = []
    for role in roles:
        if role not in reserved:
            kept.append(role)
        elif role not in warned:
            warned.add(role)
            logger.warning("%s: role %r is reserved and not taken from it", source, role)
    return tuple(kept)
