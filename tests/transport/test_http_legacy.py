"""The 2025-11-25 face of Streamable HTTP in process (``http_legacy``), over ASGI: what a
session's GET and DELETE accept as ``MCP-Protocol-Version`` (TR-7), a body naming
2026-07-28 inside a session (TR-12), a rate-limited ``initialize`` (DS-3), and someone
else's session named (SE-2, AD-1)."""

from __future__ import annotations

import json
import secrets
from typing import Any

import anyio
import httpx
import pytest

from bastion.auth.principal import Principal
from bastion.errors import RateLimited
from bastion.fixture import build_fixture_app
from bastion.protocol.jsonrpc import RequestId
from bastion.protocol.request_state import RequestStateSealer
from bastion.protocol.versions import LEGACY_VERSIONS
from bastion.server.connection import ServerConnection
from bastion.session.peer import Call
from bastion.transport._http_asgi import ASGIMessage, Scope
from bastion.transport.http_server import StreamableHttpApp
from tests.transport.asgi_support import INIT, PING, ByName, InProcess, in_process

pytestmark = pytest.mark.anyio

WAIT = 10  # seconds; every in-process exchange below finishes far sooner
MODERN = "2026-07-28"
META = {
    "io.modelcontextprotocol/protocolVersion": MODERN,
    "io.modelcontextprotocol/clientCapabilities": {},
}


async def exchange(
    app: StreamableHttpApp, method: str, headers: dict[str, str]
) -> tuple[int, bytes]:
    """One body-less request over ASGI: its status and the body up to its first chunk (a
    stream that opens is read no further; the client then leaves)."""
    sent_headers = {**headers, "host": "127.0.0.1:8080"}
    scope: Scope = {
        "type": "http",
        "method": method,
        "path": "/mcp",
        "raw_path": b"/mcp",
        "headers": [(k.encode(), v.encode()) for k, v in sent_headers.items()],
        "client": ("127.0.0.1", 50000),
    }
    status = 0
    body = bytearray()
    answered = anyio.Event()
    sent = False

    async def receive() -> ASGIMessage:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await answered.wait()
        return {"type": "http.disconnect"}

    async def send(message: ASGIMessage) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            body.extend(message.get("body", b""))
            answered.set()

    with anyio.fail_after(WAIT):
        async with anyio.create_task_group() as tg:
            tg.start_soon(app, scope, receive, send)
            await answered.wait()
    return status, bytes(body)


def refused_400(status: int, body: bytes) -> None:
    assert status == 400, (status, body[:200])
    error = json.loads(body)["error"]
    assert error["code"] == -32600


# -- TR-7: a session's requests carry its version, or none -----------------------------------


UNSUPPORTED = ["garbage", "2099-01-01", "2025-11-25x", ""]


@pytest.mark.parametrize("version", UNSUPPORTED)
async def test_tr7_get_with_an_unsupported_version_is_400_and_opens_no_stream(
    version: str,
) -> None:
    async with in_process() as gw:
        session = await gw.initialize("alice")
        headers = {**gw.headers("alice", session), "accept": "text/event-stream"}
        refused_400(*await exchange(gw.app, "GET", {**headers, "mcp-protocol-version": version}))
        # Then the standalone stream is still free: the refused GET did not hold it.
        status, _ = await exchange(gw.app, "GET", headers)
        assert status == 200


@pytest.mark.parametrize("version", UNSUPPORTED)
async def test_tr7_delete_with_an_unsupported_version_is_400_and_ends_nothing(
    version: str,
) -> None:
    async with in_process() as gw:
        session = await gw.initialize("alice")
        headers = {**gw.headers("alice", session), "mcp-protocol-version": version}
        refused_400(*await exchange(gw.app, "DELETE", headers))
        assert await gw.alive("alice", session)


@pytest.mark.parametrize("version", [None, *LEGACY_VERSIONS])
async def test_tr7_a_session_takes_any_legacy_version_we_speak_or_none(
    version: str | None,
) -> None:
    """Absent, the header means the session's negotiated version (2025-11-25 transport);
    another legacy version we speak is served at the session's (the official conformance
    suite sends 2025-03-26 inside a 2025-11-25 session and expects POST and GET to work)."""
    async with in_process() as gw:
        session = await gw.initialize("alice")
        headers = gw.headers("alice", session)
        headers.pop("mcp-protocol-version")
        if version is not None:
            headers["mcp-protocol-version"] = version
        answer = await gw.client.post("/mcp", json=PING, headers=headers)
        assert answer.status_code == 200, answer.text
        stream = {**headers, "accept": "text/event-stream"}
        assert (await exchange(gw.app, "GET", stream))[0] == 200
        assert (await exchange(gw.app, "DELETE", headers))[0] == 200
        assert not await gw.alive("alice", session)


# -- TR-12: a body naming 2026-07-28 is not served inside a session --------------------------


async def echo_in_session(gw: InProcess, session: str, **extra: str) -> httpx.Response:
    params = {"name": "echo", "arguments": {"text": "smuggled"}, "_meta": META}
    call = {"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": params}
    headers = {**gw.headers("alice", session), **extra}
    return await gw.client.post("/mcp", json=call, headers=headers)


async def test_tr12_a_session_request_whose_body_names_2026_is_400_32020() -> None:
    """Red-team t26: header 2025-11-25, a live session, a body whose ``_meta`` names
    2026-07-28 and mirror headers that lie. Served, it ran with 2026-07-28 rules while no
    ``Mcp-Method``/``Mcp-Name`` check had been made."""
    async with in_process() as gw:
        session = await gw.initialize("alice")
        for lying in ({"mcp-method": "tools/list", "mcp-name": "other"}, {}):
            refused = await echo_in_session(gw, session, **lying)
            assert refused.status_code == 400, refused.text
            answer: dict[str, Any] = refused.json()
            assert answer["error"]["code"] == -32020 and answer["id"] == 9
            assert "smuggled" not in refused.text
        assert await gw.alive("alice", session)  # the session itself is not harmed


# -- DS-3: a rate-limited initialize -----------------------------------------------------------


class Throttled(ServerConnection):
    """The fixture behind a limiter that has already refused its principal."""

    async def __call__(self, call: Call) -> Any:
        raise RateLimited("principal limit", retry_after=7)


async def test_ds3_a_rate_limited_initialize_is_429_with_retry_after() -> None:
    """No stream is open for an ``initialize``: the refusal is HTTP 429 with Retry-After
    (and the -32005 body), not a 200 a client would take for an answer; no session opens."""
    fixture = build_fixture_app()
    sealer = RequestStateSealer([secrets.token_bytes(32)])
    app = StreamableHttpApp(lambda _who, _sid: Throttled(fixture, sealer), authenticator=ByName())
    transport = httpx.ASGITransport(app=app)
    with anyio.fail_after(WAIT):
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8080") as c:
            headers = {"content-type": "application/json",
                       "accept": "application/json, text/event-stream",
                       "authorization": "Bearer alice"}  # fmt: skip
            refused = await c.post("/mcp", json=INIT, headers=headers)
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "7"
    error = refused.json()["error"]
    assert error["code"] == -32005 and error["data"]["retryAfter"] == 7
    assert "mcp-session-id" not in refused.headers
    assert app.session_count == 0


# -- SE-2, AD-1: someone else's session ------------------------------------------------------


async def test_se2_ad1_another_principals_use_of_a_session_is_heard_and_answered_as_unknown() -> (
    None
):
    """SE-2, AD-1: bob names alice's live session in a POST, a GET and a DELETE. Each is
    answered exactly as an unknown id is (404, same body), alice's session lives on, and
    ``on_foreign_session`` hears each (who, which request, the id, the JSON-RPC id), so the
    gateway can audit it; an id nobody holds is not heard of (nothing was attempted on a
    session)."""
    heard: list[tuple[str, str, str, RequestId | None]] = []

    async def hear(
        who: Principal, request: str, session_id: str, request_id: RequestId | None
    ) -> None:
        heard.append((who.id, request, session_id, request_id))

    async with in_process(on_foreign_session=hear) as gw:
        session = await gw.initialize("alice")
        unknown = "no-such-session-" + secrets.token_hex(8)
        answers: dict[str, list[tuple[int, bytes]]] = {}
        for sid in (session, unknown):
            headers = gw.headers("bob", sid)
            post = await gw.client.post("/mcp", json=PING, headers=headers)
            stream = {**headers, "accept": "text/event-stream"}
            answers[sid] = [
                (post.status_code, post.content),
                await exchange(gw.app, "GET", stream),
                await exchange(gw.app, "DELETE", headers),
            ]
        assert answers[session] == answers[unknown]
        assert [status for status, _ in answers[session]] == [404, 404, 404]
        assert await gw.alive("alice", session)
    assert heard == [
        ("bob", "POST /mcp", session, PING["id"]),
        ("bob", "GET /mcp", session, None),
        ("bob", "DELETE /mcp", session, None),
    ]
