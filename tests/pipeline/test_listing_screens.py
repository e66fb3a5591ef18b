"""IN-5, TC-4: the listing filter runs after the gateway's screens, once per rebuild: tool
pinning and the poison hold see (and hash) each definition as the upstream offered it, and
what they let through reaches the catalog filtered, with pinning and the hold on or off."""

from __future__ import annotations

from typing import Any

import pytest

from bastion._types import JSONObject
from bastion.config.load import parse_config
from bastion.pipeline.listing_screens import (
    filtered_definitions,
    filtered_tools,
    listing_filter,
)

pytestmark = pytest.mark.anyio

TOKEN = "Zq7-upstream-credential-9f3k2m"
GITHUB = "ghp_" + "x9" * 18
CONFIG = f"""
servers:
  up:
    command: python
    env: {{API_TOKEN: "{TOKEN}"}}
"""


def _config(guard: str = "") -> Any:
    return parse_config(CONFIG + guard, {})


async def test_in5_the_pin_screen_sees_the_definition_as_offered_IN5() -> None:
    """IN-5: the pin is the hash of what the upstream offered (masking settings never make
    a pinned tool look changed); the catalog gets the masked definition."""
    seen: list[list[JSONObject]] = []

    async def pins(server: str, tools: list[JSONObject], others: Any) -> list[JSONObject]:
        seen.append(tools)
        return tools

    tool = {"name": "t", "description": f"key {TOKEN} {GITHUB}", "inputSchema": {}}
    screen = filtered_tools(pins, listing_filter(_config()))
    shown = await screen("up", [tool], {})
    assert seen == [[tool]] and seen[0][0]["description"] == f"key {TOKEN} {GITHUB}"
    assert shown == [{**tool, "description": "key [REDACTED] [REDACTED]"}]


async def test_in5_the_credential_is_masked_with_screens_and_filtering_off_IN5() -> None:
    """IN-5: with pinning and the hold off, and result filtering off altogether, the
    gateway's own credential is still masked in what is listed; ordinary secrets are not."""
    guard = "guard: {sanitise: {enabled: false}, pins: {enabled: false}}\n"
    listing = listing_filter(_config(guard))
    tools = await filtered_tools(None, listing)("up", [{"name": "t", "title": TOKEN}], {})
    assert tools == [{"name": "t", "title": "[REDACTED]"}]
    prompts = [{"name": "p", "description": f"{TOKEN} {GITHUB}"}]
    shown = await filtered_definitions(None, listing)("up", "prompts", prompts, {})
    assert shown == [{"name": "p", "description": f"[REDACTED] {GITHUB}"}]


async def test_in5_what_the_hold_keeps_back_stays_back_IN5() -> None:
    """IN-5: the definition screen's verdict stands; the filter only sees what it keeps."""

    async def hold(server: str, kind: str, items: list[JSONObject], others: Any) -> list[Any]:
        return items[1:]

    items = [{"uri": "a://held", "name": "h"}, {"uri": "a://kept", "name": "k", "title": TOKEN}]
    screen = filtered_definitions(hold, listing_filter(_config()))
    shown = await screen("up", "resources", items, {})
    assert shown == [{"uri": "a://kept", "name": "k", "title": "[REDACTED]"}]
