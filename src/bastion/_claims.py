"""One reading of a claim path, shared by the JWT validator (``roles_claim``) and the policy's
claim bindings, so both find the same value (AZ-1).

A path is a claim name or a dotted path into nested objects (``realm_access.roles``). At each
level the longest run of the remaining names that is a key wins, so a claim whose name
itself holds dots (``https://example.com/roles``, as Auth0 namespaces them; a Keycloak
client id ``my.app`` under ``resource_access``) is found too. ``null`` counts as absent.

A string claim is one value, compared whole. Its words (``claim_words``) are not values
one can be sure of: ``scope`` is space-separated, but a group name may hold spaces too
(``former platform-admins``), so a reader that finds a value only as a word counts it as
*unsure*: for a deny, never for an allow or a grant (AZ-1, AZ-6).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

__all__ = ["ABSENT", "UNREADABLE", "claim_at", "claim_words"]


class _Marker:
    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name


ABSENT: Final = _Marker("ABSENT")
"""No such claim: a name along the path is not there (or is ``null``)."""
UNREADABLE: Final = _Marker("UNREADABLE")
"""The path runs into a value that is not an object (``realm_access: "x"``): the claim is
there in some shape the path cannot read."""


def claim_at(claims: Mapping[str, object], path: str) -> object:
    """The value at ``path`` in ``claims``, else ``ABSENT`` or ``UNREADABLE``."""
    names = path.split(".")
    node: object = claims
    start = 0
    while start < len(names):
        if node is None:
            return ABSENT
        if not isinstance(node, Mapping):
            return UNREADABLE
        for end in range(len(names), start, -1):
            key = ".".join(names[start:end])
            if key in node:
                node, start = node[key], end
                break
        else:
            return ABSENT
    return ABSENT if node is None else node


def claim_words(text: str) -> list[str]:
    """The words of a string claim, split at any whitespace (``str.split``: Unicode spaces
    and the separators U+001C..U+001F too), for the unsure reading (module docstring)."""
    return text.split()
