"""A client session connected to a server app over the in-memory transport pair."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio

from bastion.client import ClientHandlers, ClientSession
from bastion.protocol.request_state import RequestStateSealer
from bastion.protocol.versions import Era
from bastion.server.connection import ServerConnection
from bastion.server.registry import ServerApp
from bastion.transport.base import serve_stream
from bastion.transport.memory import create_memory_pair

WAIT = 10  # seconds; every in-memory exchange finishes far sooner


@asynccontextmanager
async def connected(
    app: ServerApp,
    era: Era | None,
    handlers: ClientHandlers | None = None,
    sealer: RequestStateSealer | None = None,
    log_level: str | None = None,
) -> AsyncIterator[ClientSession]:
    client_end, server_end = create_memory_pair()
    sealer = sealer or RequestStateSealer([secrets.token_bytes(32)])
    with anyio.fail_after(WAIT):
        async with client_end, server_end, anyio.create_task_group() as tg:
            tg.start_soon(serve_stream, server_end, ServerConnection(app, sealer))
            async with ClientSession(
                client_end, era=era, handlers=handlers, log_level=log_level
            ) as session:
                await session.connect()
                yield session
            tg.cancel_scope.cancel()
