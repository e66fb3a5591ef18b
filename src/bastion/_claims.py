"""One reading of a claim path, shared by the JWT validator (``roles_claim``) and the policy's
claim bindings, so both find the same value (AZ-1).

A path is a claim name or a dotted path into nested objects (``realm_access.roles``). At each
level the longest run of the remaining names that is a key wins, so a claim whose name
itself holds dots (``https://example.com/roles``, as Auth0 namespaces them; a Keycloak
client id ``my.app`` under ``resource_access``) is found too. ``null`` counts as absent.

A string claim is one value, compared whole (``string_values``), except OAuth's ``scope``
(and Azure's ``scp``), which RFC 9068 and RFC 8693 define as a list of values separated by
single ASCII spaces: there, each of those is a value. Other words of a string
(``claim_words``) are not values one can be sure of, since a group name may hold spaces
(``former platform-admins``): a reader that finds a value only as such a word counts it as
*unsure*: for a deny, never for an allow or a grant (AZ-1, AZ-6).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

__all__ = ["ABSENT", "SPACE_LISTS", "UNREADABLE", "claim_at", "claim_words", "string_values"]

SPACE_LISTS: Final = frozenset({"scope", "scp"})
"""Claim names whose string is a list separated by ASCII spaces (RFC 9068 s2.2.3.1)."""


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


def string_values(path: str, text: str) -> list[str]:
    """The values a string claim at ``path`` holds for sure: the whole string, or, for a
    ``SPACE_LISTS`` claim (the last name of the path), each item between ASCII spaces."""
    if path.rsplit(".", 1)[-1] in SPACE_LISTS:
        return [item for item in text.split(" ") if item]
    return [text]
