"""The gateway fronting two upstreams under their prefixes (a stdio child and an HTTP
server): namespaced tools, prompts and resource URIs, routed with the original names, in
both client eras; progress, sampling and input rounds cross the gateway."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from bastion.client import ClientHandlers, ClientSession
from bastion.errors import PeerError
from bastion.protocol.versions import Era
from bastion.transport.http_client import HttpClientStream
from tests.support import BASTION, fixture_http_server, gateway_http_server

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with fixture_http_server() as upstream:
        cfg = Path(tmp_path_factory.mktemp("gw")) / "bastion.yaml"
        cfg.write_text(
            "servers:\n"
            f"  local:\n    command: {BASTION}\n    args: [fixture, --stdio]\n"
            f"  remote_fx:\n    url: {upstream}\n"
        )
        with gateway_http_server(cfg) as gateway:
            yield gateway


async def _sample(params: dict[str, Any]) -> dict[str, Any]:
    text = params["messages"][0]["content"]["text"]
    return {
        "role": "assistant",
        "content": {"type": "text", "text": f"sampled:{text}"},
        "model": "m",
        "stopReason": "endTurn",
    }


async def _elicit(params: dict[str, Any]) -> dict[str, Any]:
    return {"action": "accept", "content": {"name": "Ada", "color": "teal"}}


@pytest.mark.parametrize("era", [Era.LEGACY, Era.MODERN])
async def test_namespaced_catalog_and_routing(url: str, era: Era) -> None:
    handlers = ClientHandlers(sampling=_sample, elicitation=_elicit)
    progress: list[float] = []

    async def on_progress(params: dict[str, Any]) -> None:
        progress.append(float(params["progress"]))

    with anyio.fail_after(30):
        async with (
            HttpClientStream(url) as stream,
            ClientSession(stream, era=era, handlers=handlers) as s,
        ):
            info = await s.connect()
            assert info.server_info["name"] == "bastion"
            names = {t["name"] for t in await s.list_tools()}
            assert {"local__echo", "remote_fx__echo", "local__test_simple_text"} <= names
            assert "echo" not in names  # no bare names when prefixes are in force
            for tool in ("local__echo", "remote_fx__echo"):
                out = await s.call_tool(tool, {"text": tool})
                assert out["content"][0]["text"] == tool
            uris = {r["uri"] for r in await s.list_all("resources/list", "resources")}
            assert {"local+test://static-text", "remote.fx+test://static-text"} <= uris
            read = await s.read_resource("remote.fx+test://static-text")
            assert read["contents"][0]["uri"] == "remote.fx+test://static-text"
            assert read["contents"][0]["text"] == "This is the content of the static text resource."
            templated = await s.read_resource("local+test://template/42/data")
            assert '"id":"42"' in templated["contents"][0]["text"]
            prompt = await s.get_prompt(
                "local__test_prompt_with_arguments", {"arg1": "x", "arg2": "y"}
            )
            assert prompt["messages"][0]["content"]["text"] == (
                "Prompt with arguments: arg1='x', arg2='y'"
            )
            await s.call_tool("remote_fx__test_tool_with_progress", on_progress=on_progress)
            assert progress == [0, 50, 100]
            sampled = await s.call_tool("local__test_sampling", {"prompt": "hi"})
            assert sampled["content"][0]["text"] == "LLM response: sampled:hi"
            rounds = await s.call_tool("remote_fx__test_input_required_result_multi_round")
            assert rounds["content"][0]["text"] == "Ada likes teal"
            with pytest.raises(PeerError):
                await s.call_tool("nope__echo", {"text": "x"})
