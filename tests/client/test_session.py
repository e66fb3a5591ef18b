"""The client face: era detection and fallback, input rounds, and the HTTP client against
the real fixture process in both eras (server requests over SSE, progress)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anyio
import pytest

from bastion.client import ClientHandlers, ClientSession
from bastion.errors import MethodNotFound
from bastion.fixture import build_fixture_app
from bastion.protocol.meta import is_modern_request
from bastion.protocol.versions import Era
from bastion.server.connection import ServerConnection
from bastion.session.peer import Call
from bastion.transport.http_client import HttpClientStream
from tests.memory import connected
from tests.support import fixture_http_server

pytestmark = pytest.mark.anyio


class LegacyOnlyConnection(ServerConnection):
    """A server from before 2026-07-28: it knows nothing of server/discover or _meta."""

    async def __call__(self, call: Call) -> Any:
        if call.method == "server/discover" or is_modern_request(call.params):
            raise MethodNotFound(call.method)
        return await super().__call__(call)


async def test_probe_falls_back_to_initialize(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("tests.memory.ServerConnection", LegacyOnlyConnection)
    async with connected(build_fixture_app(), None) as session:
        assert session.era is Era.LEGACY
        assert session.server is not None and session.server.protocol_version == "2025-11-25"
        text = await session.call_tool("echo", {"text": "fallback"})
        assert text["content"][0]["text"] == "fallback"


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with fixture_http_server() as mcp_url:
        yield mcp_url


async def _sample(params: dict[str, Any]) -> dict[str, Any]:
    prompt = params["messages"][0]["content"]["text"]
    return {
        "role": "assistant",
        "content": {"type": "text", "text": f"echo:{prompt}"},
        "model": "m",
        "stopReason": "endTurn",
    }


@pytest.mark.e2e
@pytest.mark.parametrize("era", [None, Era.LEGACY])
async def test_http_client_against_fixture(url: str, era: Era | None) -> None:
    progress: list[float] = []

    async def on_progress(params: dict[str, Any]) -> None:
        progress.append(float(params["progress"]))

    with anyio.fail_after(20):
        async with (
            HttpClientStream(url) as stream,
            ClientSession(stream, era=era, handlers=ClientHandlers(sampling=_sample)) as session,
        ):
            info = await session.connect()
            assert info.era is (era or Era.MODERN)
            if era is Era.LEGACY:
                assert stream.session_id is not None
            names = {t["name"] for t in await session.list_tools()}
            assert {"echo", "test_sampling"} <= names
            sampled = await session.call_tool("test_sampling", {"prompt": "hi"})
            assert sampled["content"][0]["text"] == "LLM response: echo:hi"
            await session.call_tool("test_tool_with_progress", on_progress=on_progress)
    assert progress == [0, 50, 100]


@pytest.mark.e2e
async def test_http_client_resumes_a_cut_stream(url: str) -> None:
    with anyio.fail_after(20):
        async with HttpClientStream(url) as stream, ClientSession(stream, era=Era.LEGACY) as s:
            await s.connect()
            result = await s.call_tool("test_reconnection")
            assert result["content"][0]["text"] == "Reconnection test completed"
