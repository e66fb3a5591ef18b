"""The table of 2025-11-25 sessions (SE-3, DS-3): bounded in all and per principal, and
one principal opening sessions in a loop never ends another's (the red-team finding: Bob's
1,030 ``initialize`` calls pushed Alice's session out of a 1,024-session table). In process,
through the ASGI app with the conformance fixture behind it."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
import pytest

from bastion.auth.principal import Principal
from bastion.fixture import build_fixture_app
from bastion.protocol.request_state import RequestStateSealer
from bastion.server.connection import ServerConnection
from bastion.transport._http_asgi import Headers, Scope
from bastion.transport.http_server import HttpSettings, StreamableHttpApp
from bastion.transport.settings import SessionSettings

pytestmark = pytest.mark.anyio

WAIT = 30  # seconds; every in-process exchange below finishes far sooner
LEGACY = "2025-11-25"
ACCEPT = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
INFO = {"name": "t", "version": "1"}
INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": LEGACY, "capabilities": {}, "clientInfo": INFO},
}
PING = {"jsonrpc": "2.0", "id": 2, "method": "ping"}


class ByName:
    """``Authorization: Bearer <name>`` is principal ``<name>`` (role ``dev``)."""

    async def authenticate(self, headers: Headers, scope: Scope) -> Principal:
        name = (headers.get("authorization") or "Bearer anon").removeprefix("Bearer ")
        return Principal(id=name, credential_id=f"key:{name}", method="api-key", roles=("dev",))

    def challenge(self, *, error: str | None) -> str:
        return "Bearer"


@asynccontextmanager
async def client_for(**sessions: Any) -> AsyncIterator[httpx.AsyncClient]:
    app_ = build_fixture_app()
    sealer = RequestStateSealer([secrets.token_bytes(32)])
    http = StreamableHttpApp(
        lambda _who, _sid: ServerConnection(app_, sealer),
        HttpSettings(sessions=SessionSettings(**sessions)),
        authenticator=ByName(),
    )
    transport = httpx.ASGITransport(app=http)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8080") as c:
        yield c
    http.close_sessions()


@pytest.fixture
async def small() -> AsyncIterator[httpx.AsyncClient]:
    """A table of 8 sessions, at most 3 per principal."""
    async with client_for(max_sessions=8, max_sessions_per_principal=3) as c:
        yield c


async def initialize(c: httpx.AsyncClient, who: str) -> str:
    opened = await c.post("/mcp", json=INIT, headers={**ACCEPT, "authorization": f"Bearer {who}"})
    assert opened.status_code == 200
    return opened.headers["mcp-session-id"]


async def alive(c: httpx.AsyncClient, who: str, session: str) -> bool:
    headers = {**ACCEPT, "authorization": f"Bearer {who}", "mcp-session-id": session,
               "mcp-protocol-version": LEGACY}  # fmt: skip
    answer = await c.post("/mcp", json=PING, headers=headers)
    assert answer.status_code in (200, 404)
    return answer.status_code == 200


async def test_ds3_se3_one_principal_cannot_push_out_anothers_session() -> None:
    """Bob opens sessions in a loop, far past the whole table (default bounds): Alice's
    session stays, and so do the newest of Bob's own, up to his cap."""
    with anyio.fail_after(WAIT):
        async with client_for() as c:
            limits = SessionSettings()
            alice = await initialize(c, "alice")
            bobs = [await initialize(c, "bob") for _ in range(limits.max_sessions + 6)]
            assert await alive(c, "alice", alice)
            assert await alive(c, "bob", bobs[-1])
            assert not await alive(c, "bob", bobs[0])


async def test_ds3_over_its_cap_a_principal_ends_its_own_least_recently_used(
    small: httpx.AsyncClient,
) -> None:
    with anyio.fail_after(WAIT):
        first, second, third = [await initialize(small, "bob") for _ in range(3)]
        assert await alive(small, "bob", first)  # now second is Bob's least recently used
        fourth = await initialize(small, "bob")
        assert [await alive(small, "bob", s) for s in (first, third, fourth)] == [True] * 3
        assert not await alive(small, "bob", second)


async def test_ds3_a_full_table_takes_from_the_principal_holding_the_most(
    small: httpx.AsyncClient,
) -> None:
    """8 sessions: Alice 1 (the least recently used of all), Bob 3, Carol 2, Dave 2. Erin's
    first takes Bob's oldest, not Alice's; Alice's second then takes the oldest of one of
    the three now holding 2, never her own first or Erin's."""
    with anyio.fail_after(WAIT):
        alice = await initialize(small, "alice")
        bobs = [await initialize(small, "bob") for _ in range(3)]
        carols = [await initialize(small, "carol") for _ in range(2)]
        daves = [await initialize(small, "dave") for _ in range(2)]
        erin = await initialize(small, "erin")
        assert await alive(small, "alice", alice)
        assert not await alive(small, "bob", bobs[0])
        await initialize(small, "alice")
        assert await alive(small, "alice", alice)
        assert await alive(small, "erin", erin)
        others = [("bob", bobs[1]), ("bob", bobs[2]), ("carol", carols[0]),
                  ("carol", carols[1]), ("dave", daves[0]), ("dave", daves[1])]  # fmt: skip
        kept = [await alive(small, who, s) for who, s in others]
        assert kept.count(False) == 1
        assert kept.index(False) in (0, 2, 4)  # someone's least recently used
