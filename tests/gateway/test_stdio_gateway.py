"""``bastion stdio``: the gateway for desktop clients answers ``initialize`` at once, before
a slow upstream is up; a list waits for the upstream's first start (so a client that lists
once sees its tools), and list_changed announces them too."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import anyio
import pytest

from bastion.client import ClientHandlers, ClientSession
from bastion.protocol.jsonrpc import Notification
from bastion.protocol.versions import Era
from bastion.transport.stdio import StdioChild
from tests.support import BASTION

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

SLOW_START = 1.5  # seconds the upstream waits before it starts serving


@pytest.mark.parametrize("era", [Era.LEGACY, Era.MODERN])
async def test_answers_at_once_and_announces_late_tools(tmp_path: Path, era: Era) -> None:
    slow = tmp_path / "slow.py"
    slow.write_text(
        "import os, sys, time\n"
        f"time.sleep({SLOW_START})\n"
        f"os.execv({str(BASTION)!r}, [{str(BASTION)!r}, 'fixture', '--stdio'])\n"
    )
    cfg = tmp_path / "bastion.yaml"
    cfg.write_text(f"servers:\n  slow:\n    command: {sys.executable}\n    args: [{slow}]\n")
    changed = anyio.Event()

    async def on_note(note: Notification) -> None:
        if note.method == "notifications/tools/list_changed":
            changed.set()

    handlers = ClientHandlers(on_notification=on_note)
    with anyio.fail_after(30):
        async with (
            StdioChild([str(BASTION), "stdio", "-c", str(cfg)]) as child,
            ClientSession(child, era=era, handlers=handlers) as session,
        ):
            started = time.monotonic()
            if era is Era.MODERN:
                # 2026-07-28 clients hear about changes on a listen stream.
                async with anyio.create_task_group() as tg:
                    await session.connect()
                    answered = time.monotonic() - started
                    tg.start_soon(
                        session.request,
                        "subscriptions/listen",
                        {"notifications": {"toolsListChanged": True}},
                    )
                    # The first list waits for the upstream's first start, then has it.
                    names = {t["name"] for t in await session.list_tools()}
                    listed = time.monotonic() - started
                    await changed.wait()
                    tg.cancel_scope.cancel()
            else:
                await session.connect()
                answered = time.monotonic() - started
                names = {t["name"] for t in await session.list_tools()}
                listed = time.monotonic() - started
                await changed.wait()
            assert answered < SLOW_START  # answered before the upstream was up
            assert listed >= SLOW_START  # ...but the list waited for it
            assert "slow__echo" in names
            out = await session.call_tool("slow__echo", {"text": "late"})
            assert out["content"][0]["text"] == "late"
