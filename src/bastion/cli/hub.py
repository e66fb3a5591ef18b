"""``bastion hub``: one stdio MCP server that reaches every instance on the machine.

It answers ``initialize`` at once (the fast start of ``bastion stdio``), then watches the
per-user registry; the client lists instances and connects to the ones it wants.
"""

from __future__ import annotations

import os
import secrets
from typing import TYPE_CHECKING

import anyio

from bastion.cli.signals import on_stop_signal
from bastion.config import Config
from bastion.gateway import Gateway
from bastion.hub.discovery import Discovery
from bastion.hub.registry import default_registry_dir
from bastion.hub.service import Hub
from bastion.protocol.request_state import RequestStateSealer

if TYPE_CHECKING:
    from bastion.cli.fast_start import EarlyStart

__all__ = ["run_hub"]


def run_hub(early: EarlyStart | None = None) -> int:
    from bastion.transport.base import serve_stream
    from bastion.transport.stdio import StdioServerStream

    gateway = Gateway(Config(), os.environ, sealer=RequestStateSealer([secrets.token_bytes(32)]))
    discovery = Discovery(default_registry_dir(os.environ))
    hub = Hub(gateway, discovery)
    connection = gateway.connection()
    if early is not None and early.version is not None:
        connection.adopt_initialize(early.version, early.client_capabilities or {})

    async def main() -> None:
        stream = await StdioServerStream.open(unread=early.unread if early else b"")
        async with anyio.create_task_group() as tg:
            tg.start_soon(on_stop_signal, tg.cancel_scope.cancel)
            tg.start_soon(gateway.run)
            await tg.start(discovery.run)
            tg.start_soon(hub.run)
            await serve_stream(stream, connection)
            tg.cancel_scope.cancel()

    anyio.run(main)
    return 0
