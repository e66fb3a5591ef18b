"""The listing filter's place in a running gateway (IN-5, TC-4, UP-4): what the gateway's
tool and definition screens let through of an upstream's lists is filtered by
``guard.listing_filter`` before it enters the catalog.

``listing_filter`` configures the filter: the gateway's own upstream credentials always, and
with ``guard.sanitise.enabled`` its ``mask_secrets``, ``pii_patterns`` and
``strip_invisible`` as for results. ``filtered_tools`` and ``filtered_definitions`` wrap the
screens (or stand in for them when pinning or the poison hold is off), so the filter runs
once per catalog rebuild, in a worker thread (DS-4), and no request pays for it. It runs
after the screens: a pin is the hash of the definition the upstream offered, not of what
this configuration shows of it, so turning masking on or off, or a new secret pattern, does
not hold every tool as changed; and the poison scan reads the definition as sent.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import anyio

from bastion._types import JSONObject
from bastion.config.model import Config
from bastion.config.secrets import configured_secrets
from bastion.guard.listing_filter import FilteredListing, ListingFilter

if TYPE_CHECKING:
    from bastion.gateway.offer import DefinitionScreen, ToolScreen

__all__ = ["filtered_definitions", "filtered_tools", "listing_filter"]

logger = logging.getLogger(__name__)


def listing_filter(config: Config) -> ListingFilter:
    """The filter ``config`` asks for (see the module docstring)."""
    sanitise = config.guard.sanitise
    on = sanitise.enabled
    return ListingFilter(
        known_secrets=configured_secrets(config),
        mask_secrets=on and sanitise.mask_secrets,
        pii_patterns=sanitise.pii_patterns if on else (),
        strip_invisible=on and sanitise.strip_invisible,
    )


def filtered_tools(screen: ToolScreen | None, listing: ListingFilter) -> ToolScreen:
    """``screen`` (None: every tool passes), then ``listing`` on what it lets through."""

    async def tools(
        server: str, offered: list[JSONObject], others: dict[str, list[str]]
    ) -> list[JSONObject]:
        shown = offered if screen is None else await screen(server, offered, others)
        return await _filtered(listing, server, "tools", shown)

    return tools


def filtered_definitions(
    screen: DefinitionScreen | None, listing: ListingFilter
) -> DefinitionScreen:
    """``screen`` (None: every definition passes), then ``listing`` on what it lets
    through; a resource left out is withheld like a held one (not read through a template)."""

    async def definitions(
        server: str, kind: str, offered: list[JSONObject], others: dict[str, list[str]]
    ) -> list[JSONObject]:
        shown = offered if screen is None else await screen(server, kind, offered, others)
        return await _filtered(listing, server, kind, shown)

    return definitions


async def _filtered(
    listing: ListingFilter, server: str, kind: str, items: list[JSONObject]
) -> list[JSONObject]:
    if not items:
        return items
    filtered: FilteredListing = await anyio.to_thread.run_sync(listing.definitions, items)
    if filtered.findings:
        counts = ", ".join(f"{n} {k}" for k, n in sorted(filtered.findings.items()))
        logger.info("masked in %s's %s: %s", server, kind, counts)
    if filtered.left_out:
        # Positions, not names: the name may be what holds the credential.
        logger.warning(
            "left %d of %s's %s out (at %s): they hold one of the gateway's own upstream "
            "credentials where it cannot be masked",
            len(filtered.left_out),
            server,
            kind,
            ", ".join(map(str, filtered.left_out[:10])),
        )
    return filtered.items
