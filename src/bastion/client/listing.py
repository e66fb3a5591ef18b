"""What the client keeps of a server's paginated lists (UP-4, DS-4, TC-3): well-formed items
only, and no more than the server's ``ListingLimits`` allow.

An item is kept when it is a JSON object whose key field (a tool's or prompt's ``name``, a
resource's ``uri``, a template's ``uriTemplate``) is a string and which converts to its MCP
type; the others are dropped and counted, so one malformed item can never reach the merged
catalog. ``ListingBudget`` spends one server's limits over one refresh of its lists: each
kind keeps at most ``max_items`` items, and all kinds together at most ``max_bytes`` of
JSON. Past either limit no further page is asked for, and ``cut`` says what was left out.
"""

from __future__ import annotations

from typing import Annotated, Final

import msgspec
from msgspec import Meta

from bastion._types import JSONObject, JSONValue
from bastion.protocol import types as t

__all__ = ["DEFAULT_LIMITS", "KIND_MODELS", "ListingBudget", "ListingLimits"]

# The key field and MCP type of each list's items, by the key of its result.
KIND_MODELS: Final[dict[str, tuple[str, type[t.Model]]]] = {
    "tools": ("name", t.Tool),
    "prompts": ("name", t.Prompt),
    "resources": ("uri", t.Resource),
    "resourceTemplates": ("uriTemplate", t.ResourceTemplate),
}
_MiB: Final = 1024 * 1024


class ListingLimits(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How much of one upstream's lists the gateway keeps, and how often it re-lists.

    ``max_items`` bounds each kind (tools, prompts, resources, templates); ``max_bytes``
    the JSON of all four together; ``relist_interval`` is the least time (seconds) between
    two re-listings, so a storm of ``list_changed`` notifications costs one per interval.
    """

    max_items: Annotated[int, Meta(ge=1, le=1_000_000)] = 10_000
    max_bytes: Annotated[int, Meta(ge=1024, le=1024 * _MiB)] = 16 * _MiB
    relist_interval: Annotated[float, Meta(ge=0.0, le=60.0)] = 0.5


DEFAULT_LIMITS: Final = ListingLimits()


class ListingBudget:
    """One server's ``ListingLimits`` spent over one refresh of its lists."""

    def __init__(self, limits: ListingLimits = DEFAULT_LIMITS) -> None:
        self.limits = limits
        self.bytes_left = limits.max_bytes
        self.cut: list[str] = []  # what a limit left out, one phrase per kind
        self.malformed = 0  # items dropped as malformed (a non-list page counts as one)

    def take(self, key: str, page: JSONValue, into: list[JSONObject]) -> bool:
        """Add to ``into`` (the items of ``key``, ``tools``..., kept so far) the well-formed
        items of one page that fit; False once a limit is reached (ask for no more pages)."""
        if not isinstance(page, list):
            self.malformed += page is not None
            return True
        field, model = KIND_MODELS.get(key, ("", t.Model))
        if len(into) + len(page) <= self.limits.max_items and _all_well_formed(page, model):
            size = len(msgspec.json.encode(page))
            if size <= self.bytes_left:  # the usual page: all of it, checked at once
                self.bytes_left -= size
                into.extend(page)
                return True
        for item in page:
            if not _well_formed(item, field, model):
                self.malformed += 1
                continue
            assert isinstance(item, dict)  # _well_formed said so
            if len(into) >= self.limits.max_items:
                self.cut.append(f"{key} past {self.limits.max_items} items (max_items)")
                return False
            size = len(msgspec.json.encode(item))
            if size > self.bytes_left:
                self.bytes_left = 0
                self.cut.append(f"{key} past {self.limits.max_bytes} bytes (max_bytes)")
                return False
            self.bytes_left -= size
            into.append(item)
        return True

    def note_pages(self, key: str, pages: int) -> None:
        """A list still had more pages after ``pages`` of them: the rest is left out."""
        self.cut.append(f"{key} past {pages} pages")


def _all_well_formed(page: list[JSONValue], model: type[t.Model]) -> bool:
    """Whether every item of ``page`` converts to ``model`` (each one's key field is a
    required string of it), or, for a list of no known type, is an object."""
    if model is t.Model:
        return all(isinstance(item, dict) for item in page)
    try:
        msgspec.convert(page, list[model])  # type: ignore[valid-type]
    except msgspec.ValidationError:
        return False
    return True


def _well_formed(item: JSONValue, field: str, model: type[t.Model]) -> bool:
    if not isinstance(item, dict):
        return False
    if not field:
        return True  # a list this module has no type for: any object
    if not isinstance(item.get(field), str):
        return False
    try:
        msgspec.convert(item, model)
    except msgspec.ValidationError:
        return False
    return True
