"""Bridging the protocol revisions through the gateway, both ways:

* a 2026-07-28 client and a 2025-11-25 upstream: the upstream's mid-call elicitation and
  sampling become input-required results, and the client's retry completes the very same
  upstream call (parked meanwhile, at one of the server's replicas);
* a 2025-11-25 client and a 2026-07-28 upstream: the upstream's input-required result becomes
  requests to the client, then a retry upstream.
"""

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
from tests.support import BASTION, PYTHON, gateway_http_server

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

UPSTREAMS = Path(__file__).parent / "upstreams"


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    cfg = Path(tmp_path_factory.mktemp("bridge")) / "bastion.yaml"
    cfg.write_text(
        "servers:\n"
        f"  old:\n    command: {BASTION}\n    args: [fixture, --stdio, --legacy-only]\n"
        f"  new:\n    command: {BASTION}\n    args: [fixture, --stdio]\n"
        f"  pair:\n    command: {BASTION}\n    args: [fixture, --stdio, --legacy-only]\n"
        "    replicas: 2\n"
        f"  asker:\n    command: {PYTHON}\n    args: [{UPSTREAMS / 'reserved_asker.py'}]\n"
    )
    with gateway_http_server(cfg) as gateway:
        yield gateway


@pytest.mark.parametrize(
    ("client_era", "server"),
    [
        (Era.MODERN, "old"),
        (Era.LEGACY, "new"),
        (Era.MODERN, "new"),
        (Era.LEGACY, "old"),
        (Era.MODERN, "pair"),  # each retry must reach the replica its call is parked at
    ],
)
async def test_input_crosses_the_gateway(url: str, client_era: Era, server: str) -> None:
    asked: list[str] = []

    async def elicit(params: dict[str, Any]) -> dict[str, Any]:
        asked.append(params["message"])
        return {
            "action": "accept",
            "content": {
                "username": "ada",
                "email": "a@example.com",
                "name": "Ada",
                "color": "teal",
            },
        }

    async def sample(params: dict[str, Any]) -> dict[str, Any]:
        asked.append("sampling")
        return {
            "role": "assistant",
            "content": {"type": "text", "text": "Paris"},
            "model": "m",
            "stopReason": "endTurn",
        }

    handlers = ClientHandlers(elicitation=elicit, sampling=sample)
    with anyio.fail_after(30):
        async with (
            HttpClientStream(url) as stream,
            ClientSession(stream, era=client_era, handlers=handlers) as s,
        ):
            await s.connect()
            elicited = await s.call_tool(f"{server}__test_elicitation", {"message": "Who?"})
            assert "a@example.com" in elicited["content"][0]["text"]
            sampled = await s.call_tool(f"{server}__test_sampling", {"prompt": "Capital?"})
            assert sampled["content"][0]["text"] == "LLM response: Paris"
            rounds = await s.call_tool(f"{server}__test_input_required_result_multi_round")
            assert rounds["content"][0]["text"] == "Ada likes teal"
    assert asked[:2] == ["Who?", "sampling"]
    assert asked[2:] == ["Step 1: What is your name?", "Step 2: What is your favorite color?"]


@pytest.mark.parametrize("client_era", [Era.LEGACY, Era.MODERN])
@pytest.mark.parametrize("server", ["old", "new"])
async def test_resource_updates_reach_the_subscriber(
    url: str, client_era: Era, server: str
) -> None:
    """A client subscribes to a namespaced URI; the gateway subscribes upstream (a request on
    2025-11-25, a listen stream on 2026-07-28) and relays the update under the same URI."""
    exposed = f"{server}+test://watched-resource"
    updated = anyio.Event()
    seen: list[str] = []

    async def on_note(note: Any) -> None:
        if note.method == "notifications/resources/updated":
            seen.append(note.params["uri"])
            updated.set()

    with anyio.fail_after(30):
        async with (
            HttpClientStream(url) as stream,
            ClientSession(
                stream, era=client_era, handlers=ClientHandlers(on_notification=on_note)
            ) as s,
        ):
            await s.connect()
            async with anyio.create_task_group() as tg:
                if client_era is Era.LEGACY:
                    assert await s.request("resources/subscribe", {"uri": exposed}) == {}
                else:
                    tg.start_soon(
                        s.request,
                        "subscriptions/listen",
                        {"notifications": {"resourceSubscriptions": [exposed]}},
                    )
                # The upstream subscription is set up asynchronously; poke until it lands.
                while not updated.is_set():
                    await s.call_tool(f"{server}__test_trigger_resource_update")
                    with anyio.move_on_after(0.2):
                        await updated.wait()
                tg.cancel_scope.cancel()
    assert set(seen) == {exposed}


@pytest.mark.parametrize("client_era", [Era.LEGACY, Era.MODERN])
async def test_an_upstream_asking_under_bastions_own_prefix_is_refused(
    url: str, client_era: Era
) -> None:
    """AZ-1, TC-6 (red-team K1): keys under ``io.bastion/`` are the gateway's own questions,
    which its policy check does not decide; a 2026-07-28 upstream asking under one got its
    URL elicitation to the client past a deny. Such a question is refused whole now, in
    either client era, while the same question under a key of its own is asked."""
    asked: list[str] = []

    async def elicit(params: dict[str, Any]) -> dict[str, Any]:
        asked.append(params["url"])
        return {"action": "accept"}

    handlers = ClientHandlers(elicitation=elicit)
    with anyio.fail_after(30):
        async with (
            HttpClientStream(url) as stream,
            ClientSession(stream, era=client_era, handlers=handlers) as s,
        ):
            await s.connect()
            plain = await s.call_tool("asker__plain")
            assert plain["content"][0]["text"] == "answered ['q']"
            assert asked == ["https://attacker.example/login"]
            with pytest.raises(PeerError) as refused:
                await s.call_tool("asker__reserved")
    assert asked == ["https://attacker.example/login"]  # the reserved one never reached it
    assert refused.value.peer_code == -32600
