"""``bastion hub``: one stdio MCP server that reaches every instance on the machine.

It answers ``initialize`` at once (the fast start of ``bastion stdio``), then watches the
per-user registry; the client lists instances and connects to the ones it wants, or just
calls ``<instance>__<tool>`` (connect on first use). ``--connect NAME`` connects at start,
for one-shot clients that list before they call.

Every request runs through the security pipeline as the local user, as on ``bastion
stdio``: the built-in policy, the audit log, result sanitising, and tool pinning with the
poison screen (TC-1..TC-4), so an instance's tools and results are filtered like any
upstream's. Its pins live for the hub process (a temporary database): local instances are
under development and change between runs, and a changed tool within a run is held.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import anyio.abc

from bastion.cli.gateway import serve_on_stdio
from bastion.config import Config
from bastion.gateway import Gateway
from bastion.guard.settings import GuardSettings, PinSettings
from bastion.hub.discovery import Discovery
from bastion.hub.registry import default_registry_dir
from bastion.hub.service import Hub
from bastion.pipeline.runtime import Security
from bastion.protocol.request_state import RequestStateSealer

if TYPE_CHECKING:
    from bastion.cli.fast_start import EarlyStart

__all__ = ["run_hub"]


def run_hub(early: EarlyStart | None = None, *, connect: Sequence[str] = ()) -> int:
    with tempfile.TemporaryDirectory(prefix="bastion-hub-") as pins:
        config = Config(guard=GuardSettings(pins=PinSettings(db_path=str(Path(pins) / "pins.db"))))
        sealer = RequestStateSealer([secrets.token_bytes(32)])
        gateway = Gateway(config, os.environ, sealer=sealer)
        discovery = Discovery(default_registry_dir(os.environ))
        hub = Hub(gateway, discovery, connect_at_start=connect)

        async def follow(*, task_status: anyio.abc.TaskStatus[None]) -> None:
            task_status.started()
            await hub.run()

        security = Security(config, gateway)
        return serve_on_stdio(gateway, early, beside=[discovery.run, follow], security=security)
