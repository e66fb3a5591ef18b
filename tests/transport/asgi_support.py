"""The Streamable HTTP app in process, with the conformance fixture behind it: principals by
name (``Authorization: Bearer <name>``), 2025-11-25 sessions, calls, and ``Last-Event-ID``
resumption driven over ASGI directly (a resumed standalone stream never ends, so the test
reads its priming event and leaves)."""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx

from bastion.auth.principal import Principal
from bastion.fixture import build_fixture_app
from bastion.protocol.request_state import RequestStateSealer
from bastion.server.connection import ServerConnection
from bastion.transport._http_asgi import ASGIMessage, Headers, Scope
from bastion.transport.http_legacy import ForeignSession
from bastion.transport.http_server import HttpSettings, StreamableHttpApp
from bastion.transport.settings import SessionSettings

LEGACY = "2025-11-25"
ACCEPT = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": LEGACY,
        "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"},
    },
}
PING = {"jsonrpc": "2.0", "id": 2, "method": "ping"}


class ByName:
    """``Authorization: Bearer <name>`` is principal ``<name>`` (role ``dev``)."""

    async def authenticate(self, headers: Headers, scope: Scope) -> Principal:
        name = (headers.get("authorization") or "Bearer anon").removeprefix("Bearer ")
        return Principal(id=name, credential_id=f"key:{name}", method="api-key", roles=("dev",))

    def challenge(self, *, error: str | None) -> str:
        return "Bearer"


class InProcess:
    """One app and a client for it."""

    def __init__(self, app: StreamableHttpApp, client: httpx.AsyncClient) -> None:
        self.app = app
        self.client = client

    def headers(self, who: str, session: str | None = None) -> dict[str, str]:
        headers = {**ACCEPT, "authorization": f"Bearer {who}"}
        if session is not None:
            headers |= {"mcp-session-id": session, "mcp-protocol-version": LEGACY}
        return headers

    async def initialize(self, who: str) -> str:
        opened = await self.client.post("/mcp", json=INIT, headers=self.headers(who))
        assert opened.status_code == 200
        return opened.headers["mcp-session-id"]

    async def alive(self, who: str, session: str) -> bool:
        answer = await self.client.post("/mcp", json=PING, headers=self.headers(who, session))
        assert answer.status_code in (200, 404)
        return answer.status_code == 200

    async def echo(self, who: str, session: str, text: str, request_id: int) -> str:
        """Call the fixture's echo tool; the event id of the answer."""
        call = {"jsonrpc": "2.0", "id": request_id, "method": "tools/call",
                "params": {"name": "echo", "arguments": {"text": text}}}  # fmt: skip
        answer = await self.client.post("/mcp", json=call, headers=self.headers(who, session))
        assert answer.status_code == 200
        ids = [line[4:] for line in answer.text.splitlines() if line.startswith("id: ")]
        return ids[0]  # the priming event's: resuming from it replays the answer

    async def resume(self, who: str, session: str, last_event_id: str) -> list[Any]:
        """GET with ``Last-Event-ID``: the messages replayed, or [] when the server opened
        another stream (the standalone one: the event id named nothing it still has)."""
        headers = {**self.headers(who, session), "accept": "text/event-stream",
                   "last-event-id": last_event_id, "host": "127.0.0.1:8080"}  # fmt: skip
        scope: Scope = {
            "type": "http",
            "method": "GET",
            "path": "/mcp",
            "raw_path": b"/mcp",
            "headers": [(k.encode(), v.encode()) for k, v in headers.items()],
            "client": ("127.0.0.1", 50000),
        }
        ours = b"id: " + last_event_id.partition(".")[0].encode()  # the stream it names
        body = bytearray()
        leave = anyio.Event()
        ended = anyio.Event()

        async def receive() -> ASGIMessage:
            await leave.wait()
            return {"type": "http.disconnect"}

        async def send(message: ASGIMessage) -> None:
            if message["type"] == "http.response.start":
                assert message["status"] == 200
            elif message["type"] == "http.response.body":
                body.extend(message.get("body", b""))
                if not message.get("more_body", False):
                    ended.set()
                elif not body.startswith(ours):
                    leave.set()  # the priming event names another stream: nothing replayed

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(self.app, scope, receive, send)
                await ended.wait()
                leave.set()
        if not body.startswith(ours):
            return []
        return [
            json.loads(line[6:])
            for line in body.decode().splitlines()
            if line.startswith("data: ") and line[6:].strip()
        ]


@asynccontextmanager
async def in_process(
    clock: Callable[[], float] | None = None,
    on_foreign_session: ForeignSession | None = None,
    **sessions: Any,
) -> AsyncIterator[InProcess]:
    """An app with ``gateway.sessions`` set to ``sessions`` (defaults otherwise)."""
    fixture = build_fixture_app()
    sealer = RequestStateSealer([secrets.token_bytes(32)])
    extra: dict[str, Any] = {} if clock is None else {"clock": clock}
    if on_foreign_session is not None:
        extra["on_foreign_session"] = on_foreign_session
    app = StreamableHttpApp(
        lambda _who, _sid: ServerConnection(fixture, sealer),
        HttpSettings(sessions=SessionSettings(**sessions)),
        authenticator=ByName(),
        **extra,
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8080") as c:
        yield InProcess(app, c)
    app.close_sessions()
