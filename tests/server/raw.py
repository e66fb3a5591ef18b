"""A raw JSON-RPC peer for server tests: send exact messages, read exact answers."""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import msgspec

from bastion.protocol.request_state import RequestStateSealer
from bastion.server.connection import ServerConnection
from bastion.server.registry import ServerApp
from bastion.transport.base import serve_stream
from bastion.transport.memory import MemoryStream, create_memory_pair

MODERN_META = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientCapabilities": {},
    "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "1"},
}
INITIALIZE = {
    "protocolVersion": "2025-11-25",
    "capabilities": {},
    "clientInfo": {"name": "raw", "version": "1"},
}


class RawClient:
    def __init__(self, stream: MemoryStream) -> None:
        self.stream = stream

    async def send(self, message: dict[str, Any] | bytes) -> None:
        data = message if isinstance(message, bytes) else json.dumps(message).encode()
        await self.stream.send_raw(data)

    async def recv(self, timeout: float = 5) -> dict[str, Any]:
        with anyio.fail_after(timeout):
            item = await self.stream._receive.receive()
        decoded: dict[str, Any] = msgspec.json.decode(item)
        return decoded

    async def call(
        self, method: str, params: dict[str, Any] | None = None, request_id: int | str = 1
    ) -> dict[str, Any]:
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            message["params"] = params
        await self.send(message)
        while True:
            answer = await self.recv()
            if answer.get("id") == request_id and "method" not in answer:
                return answer

    async def modern(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        request_id: int | str = 1,
        **meta: Any,
    ) -> dict[str, Any]:
        return await self.call(
            method, {**(params or {}), "_meta": {**MODERN_META, **meta}}, request_id
        )


@asynccontextmanager
async def raw_client(
    app: ServerApp,
    sealer: RequestStateSealer | None = None,
    *,
    caller: tuple[str, str] | None = None,
) -> AsyncIterator[RawClient]:
    client_end, server_end = create_memory_pair(buffer=16)
    connection = ServerConnection(app, sealer or RequestStateSealer([secrets.token_bytes(32)]))
    if caller is not None:
        connection.serve_as(caller)
    async with client_end, server_end, anyio.create_task_group() as tg:
        tg.start_soon(serve_stream, server_end, connection)
        yield RawClient(client_end)
        tg.cancel_scope.cancel()
