"""Interop with the official MCP Python SDK (``mcp`` 2.3.0), both directions, both eras.

a. The SDK's ``Client`` drives ``bastion fixture`` over stdio and Streamable HTTP, with
   ``mode="legacy"`` (initialize), ``"auto"`` (probes server/discover) and ``"2026-07-28"``.
b. Bastion's client face (``ClientSession``) drives an ``MCPServer`` (``sdk_server.py``)
   over ``StdioChild`` and ``HttpClientStream``, with the era detected or forced.
"""

from __future__ import annotations

import gc
import subprocess
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp import Client, StdioServerParameters
from mcp.client import ClientRequestContext

from bastion._types import JSONObject
from bastion.client import ClientHandlers, ClientSession
from bastion.protocol.jsonrpc import Message, Request
from bastion.protocol.versions import Era
from bastion.transport.http_client import HttpClientStream
from bastion.transport.stdio import StdioChild
from tests.support import (
    BASTION,
    PYTHON,
    fixture_http_server,
    free_port,
    stop_process,
    wait_for_port,
)

pytestmark = [pytest.mark.interop, pytest.mark.anyio]

SDK_SERVER = Path(__file__).with_name("sdk_server.py")
STATIC_TEXT = "This is the content of the static text resource."
ECHO_TEXT = 'interop: ünïcode, "quotes" and  spaces'
LLM_ANSWER = "forty-two"
FORM = {"username": "ann", "email": "ann@example.com", "name": "Ada"}
SCENARIO_TIMEOUT = 30.0
LEGACY, MODERN = "2025-11-25", "2026-07-28"


@pytest.fixture(scope="module")
def fixture_url() -> Iterator[str]:
    with fixture_http_server() as url:
        yield url


@pytest.fixture(scope="module")
def sdk_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log = (tmp_path_factory.mktemp("sdk-server") / "stderr.log").open("wb")
    proc = subprocess.Popen(
        [PYTHON, str(SDK_SERVER), "http", str(port)], stdout=subprocess.DEVNULL, stderr=log
    )
    try:
        wait_for_port(port)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        stop_process(proc)
        log.close()


def text_of(content: list[Any]) -> str:
    assert len(content) == 1 and isinstance(content[0], types.TextContent), content
    return content[0].text


# -- a. The official SDK client against Bastion's fixture ---------------------------------


async def sdk_client_scenario(server: str | StdioServerParameters, mode: str) -> None:
    asked: list[str] = []
    reports: list[tuple[float, float | None, str | None]] = []

    async def sampling(
        context: ClientRequestContext, params: types.CreateMessageRequestParams
    ) -> types.CreateMessageResult:
        content = params.messages[0].content
        asked.append(f"sampling:{content.text if isinstance(content, types.TextContent) else '?'}")
        return types.CreateMessageResult(
            role="assistant",
            content=types.TextContent(type="text", text=LLM_ANSWER),
            model="interop-model",
            stop_reason="endTurn",
        )

    async def elicitation(
        context: ClientRequestContext, params: types.ElicitRequestParams
    ) -> types.ElicitResult:
        asked.append(f"elicitation:{params.message}")
        fields = (getattr(params, "requested_schema", None) or {}).get("properties") or {}
        return types.ElicitResult(action="accept", content={k: FORM[k] for k in fields})

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        reports.append((progress, total, message))

    with anyio.fail_after(SCENARIO_TIMEOUT):
        async with Client(
            server, mode=mode, sampling_callback=sampling, elicitation_callback=elicitation
        ) as client:
            assert client.protocol_version == (LEGACY if mode == "legacy" else MODERN)
            if mode != MODERN:  # a pinned version skips the handshake that names the server
                assert client.server_info is not None
                assert client.server_info.name == "bastion-conformance-fixture"

            names = [tool.name for tool in (await client.list_tools()).tools]
            assert {"echo", "test_simple_text", "test_error_handling"} <= set(names)

            echoed = await client.call_tool("echo", {"text": ECHO_TEXT})
            assert not echoed.is_error and text_of(echoed.content) == ECHO_TEXT
            simple = await client.call_tool("test_simple_text", {})
            assert text_of(simple.content) == "This is a simple text response for testing."
            failed = await client.call_tool("test_error_handling", {})
            assert failed.is_error is True

            read = await client.read_resource("test://static-text")
            assert len(read.contents) == 1
            assert isinstance(read.contents[0], types.TextResourceContents)
            assert read.contents[0].text == STATIC_TEXT
            templated = await client.read_resource("test://template/42/data")
            assert isinstance(templated.contents[0], types.TextResourceContents)
            assert '"id":"42"' in templated.contents[0].text

            prompt = await client.get_prompt(
                "test_prompt_with_arguments", {"arg1": "alpha", "arg2": "beta"}
            )
            said = prompt.messages[0].content
            assert isinstance(said, types.TextContent)
            assert "alpha" in said.text and "beta" in said.text

            done = await client.call_tool(
                "test_tool_with_progress", {}, progress_callback=on_progress
            )
            assert text_of(done.content) == "Progress test completed"
            assert [(v, t) for v, t, _ in reports] == [(0, 100), (50, 100), (100, 100)]

            sampled = await client.call_tool("test_sampling", {"prompt": "What is 6 x 7?"})
            assert text_of(sampled.content) == f"LLM response: {LLM_ANSWER}"
            elicited = await client.call_tool("test_elicitation", {"message": "Who are you?"})
            reply = text_of(elicited.content)
            assert "action=accept" in reply and "ann@example.com" in reply
            named = await client.call_tool("test_input_required_result_elicitation", {})
            assert text_of(named.content) == "Hello, Ada!"
    assert asked == [
        "sampling:What is 6 x 7?",
        "elicitation:Who are you?",
        "elicitation:What is your name?",
    ]


SDK_MODES = ["legacy", "auto", MODERN]


@pytest.mark.parametrize("mode", SDK_MODES)
async def test_sdk_client_to_fixture_over_stdio(mode: str) -> None:
    await sdk_client_scenario(
        StdioServerParameters(command=str(BASTION), args=["fixture", "--stdio"]), mode
    )


@pytest.mark.parametrize("mode", SDK_MODES)
async def test_sdk_client_to_fixture_over_http(fixture_url: str, mode: str) -> None:
    await sdk_client_scenario(fixture_url, mode)


# -- b. Bastion's client face against an official-SDK server -------------------------------


class RecordingChild(StdioChild):
    """A ``StdioChild`` that remembers the methods of the requests it sent."""

    def __init__(self, argv: list[str]) -> None:
        super().__init__(argv)
        self.sent: list[str] = []

    async def send(self, message: Message) -> None:
        if isinstance(message, Request):
            self.sent.append(message.method)
        await super().send(message)


class RecordingHttp(HttpClientStream):
    """An ``HttpClientStream`` that remembers the methods of the requests it sent."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.sent: list[str] = []

    async def send(self, message: Message) -> None:
        if isinstance(message, Request):
            self.sent.append(message.method)
        await super().send(message)


async def bastion_client_scenario(stream: RecordingChild | RecordingHttp, era: Era | None) -> None:
    asked: list[JSONObject] = []

    async def elicit(params: JSONObject) -> JSONObject:
        asked.append(params)
        return {"action": "accept", "content": {"name": "Ada"}}

    async def sample(params: JSONObject) -> JSONObject:
        asked.append(params)
        return {
            "role": "assistant",
            "content": {"type": "text", "text": "Paris"},
            "model": "interop-model",
            "stopReason": "endTurn",
        }

    handlers = ClientHandlers(sampling=sample, elicitation=elicit)
    expected = Era.LEGACY if era is Era.LEGACY else Era.MODERN  # the SDK server speaks both
    async with ClientSession(stream, era=era, handlers=handlers) as session:
        info = await session.connect()
        assert info.era is expected
        assert info.protocol_version == (LEGACY if expected is Era.LEGACY else MODERN)
        assert info.server_info.get("name") == "sdk-peer"
        assert info.instructions == "An official-SDK test peer."
        assert "tools" in info.capabilities

        names = [tool["name"] for tool in await session.list_tools()]
        assert sorted(names) == ["add", "ask_llm", "ask_name"]
        added = await session.call_tool("add", {"a": 2, "b": 40})
        assert added["content"] == [{"type": "text", "text": "42"}]
        assert added["structuredContent"] == {"result": 42} and added["isError"] is False
        bad = await session.call_tool("add", {"a": "two", "b": 40})
        assert bad["isError"] is True

        read = await session.read_resource("sdk://greeting")
        assert read["contents"] == [
            {
                "uri": "sdk://greeting",
                "mimeType": "text/plain",
                "text": "Hello from the official SDK server.",
            }
        ]
        prompt = await session.get_prompt("review", {"code": "x = 1"})
        assert prompt["messages"] == [
            {"role": "user", "content": {"type": "text", "text": "Please review this code: x = 1"}}
        ]

        named = await session.call_tool("ask_name")
        assert named["content"] == [{"type": "text", "text": "Hello, Ada!"}]
        sampled = await session.call_tool("ask_llm", {"question": "Capital of France?"})
        assert sampled["content"] == [{"type": "text", "text": "The model said: Paris"}]
        assert asked[0]["message"] == "What is your name?"
        assert asked[1]["messages"] == [
            {"role": "user", "content": {"type": "text", "text": "Capital of France?"}}
        ]

    handshake = "initialize" if expected is Era.LEGACY else "server/discover"
    assert stream.sent[0] == handshake
    assert ("initialize" in stream.sent) is (expected is Era.LEGACY)
    if expected is Era.LEGACY:
        assert "server/discover" not in stream.sent


ERAS = [
    pytest.param(None, id="detect"),
    pytest.param(Era.LEGACY, id="legacy"),
    pytest.param(Era.MODERN, id="modern"),
]


@pytest.mark.parametrize("era", ERAS)
async def test_bastion_client_to_sdk_server_over_stdio(era: Era | None) -> None:
    with anyio.fail_after(SCENARIO_TIMEOUT):
        child = RecordingChild([PYTHON, str(SDK_SERVER), "stdio"])
        async with child:
            await bastion_client_scenario(child, era)
        assert child.returncode is not None


@pytest.mark.parametrize("era", ERAS)
async def test_bastion_client_to_sdk_server_over_http(sdk_server_url: str, era: Era | None) -> None:
    with anyio.fail_after(SCENARIO_TIMEOUT):
        stream = RecordingHttp(sdk_server_url)
        async with stream:
            await bastion_client_scenario(stream, era)
            # 2025-11-25 over HTTP is a session: the SDK server issued an Mcp-Session-Id.
            assert (stream.session_id is not None) is (era is Era.LEGACY)


async def test_http_client_stream_leaves_nothing_unclosed(sdk_server_url: str) -> None:
    """A closed ``HttpClientStream`` leaves no unclosed anyio streams for the GC to find."""
    with anyio.fail_after(SCENARIO_TIMEOUT):
        async with HttpClientStream(sdk_server_url) as stream, ClientSession(stream) as session:
            await session.connect()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        del stream, session
        gc.collect()
    assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []
