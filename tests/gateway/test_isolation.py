"""Isolation between the clients of one ``bastion serve``: two clients at once, one per
protocol era, each get only their own progress, sampling and elicitation requests, results
and log messages, whichever era the upstream speaks; and what an upstream still says for
a call its client abandoned does not reach the next caller."""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from bastion.client import ClientHandlers, ClientSession
from bastion.errors import BastionError
from bastion.protocol.jsonrpc import Notification
from bastion.protocol.versions import Era
from bastion.transport.http_client import HttpClientStream
from tests.support import BASTION, PYTHON, fixture_http_server, gateway_http_server

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

UPSTREAMS = Path(__file__).parent / "upstreams"
FIXTURE_LOGS = ["Tool execution started", "Tool processing data", "Tool execution completed"]
PROGRESS = [(0, "step 1 of 3"), (50, "step 2 of 3"), (100, "step 3 of 3")]
ERAS = pytest.mark.parametrize(
    "era", [Era.LEGACY, Era.MODERN], ids=["legacy_client", "modern_client"]
)
UPSTREAM_ERAS = pytest.mark.parametrize(
    "upstream",
    ["modern", "legacy", "legacy_http"],
    ids=["modern_upstream", "legacy_upstream", "legacy_http_upstream"],
)


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    servers: dict[str, Any] = {
        "modern": {"command": str(BASTION), "args": ["fixture", "--stdio"]},
        "legacy": {"command": str(BASTION), "args": ["fixture", "--stdio", "--legacy-only"]},
        "chatty": {"command": PYTHON, "args": [str(UPSTREAMS / "chatty.py")]},
    }
    cfg = tmp_path_factory.mktemp("isolation") / "bastion.yaml"
    with contextlib.ExitStack() as stack:
        servers["legacy_http"] = {"url": stack.enter_context(fixture_http_server(legacy_only=True))}
        cfg.write_text(json.dumps({"servers": servers}))  # JSON is YAML
        gateway = stack.enter_context(gateway_http_server(cfg))
        status = httpx.get(gateway.removesuffix("/mcp") + "/readyz", timeout=5).json()
        yield gateway
    # bastion serve leaves its upstreams running when stopped with SIGTERM (test_faults
    # test_stopping_the_gateway_stops_its_upstreams); do not leave them behind.
    for upstream in status["upstreams"]:
        with contextlib.suppress(ProcessLookupError, TypeError):
            os.kill(upstream["pid"], signal.SIGKILL)


@dataclass
class Client:
    """One client and everything that reached it."""

    name: str
    era: Era
    sampled: list[str] = field(default_factory=list)  # prompts its sampling handler got
    elicited: list[str] = field(default_factory=list)  # messages its elicitation handler got
    logs: list[Any] = field(default_factory=list)  # data of the log messages it got
    stray: list[Notification] = field(default_factory=list)  # progress for no call of its own
    outcomes: dict[str, Any] = field(default_factory=dict)  # per call: text or the error

    def handlers(self) -> ClientHandlers:
        async def sample(params: dict[str, Any]) -> dict[str, Any]:
            prompt = params["messages"][0]["content"]["text"]
            self.sampled.append(prompt)
            return {
                "role": "assistant",
                "content": {"type": "text", "text": f"{self.name} answers {prompt}"},
                "model": "m",
                "stopReason": "endTurn",
            }

        async def elicit(params: dict[str, Any]) -> dict[str, Any]:
            self.elicited.append(params["message"])
            content = {"username": self.name, "email": f"{self.name}@example.com"}
            return {"action": "accept", "content": content}

        async def notified(note: Notification) -> None:
            params = note.params or {}
            if note.method == "notifications/message":
                self.logs.append(params.get("data"))
            elif note.method == "notifications/progress":
                self.stray.append(note)

        return ClientHandlers(sampling=sample, elicitation=elicit, on_notification=notified)


@asynccontextmanager
async def session(
    url: str, client: Client, log_level: str = "debug"
) -> AsyncIterator[ClientSession]:
    """A connected session for ``client`` that asked for log messages at ``log_level``."""
    async with (
        HttpClientStream(url) as stream,
        ClientSession(stream, era=client.era, handlers=client.handlers(), log_level=log_level) as s,
    ):
        await s.connect()
        if client.era is Era.LEGACY:
            await s.request("logging/setLevel", {"level": log_level})
        yield s


async def outcome(s: ClientSession, tool: str, args: dict[str, Any] | None = None) -> Any:
    """The text of a successful call, else the error (a JSON-RPC one or an isError result)."""
    try:
        out = await s.call_tool(tool, args)
    except BastionError as exc:
        return exc
    text = out["content"][0].get("text")
    return out if out.get("isError") else text


async def exercise(
    s: ClientSession, client: Client, upstream: str, go: anyio.Event, logging: bool
) -> None:
    """Progress, sampling and elicitation calls (and a logging call), all at once."""
    await go.wait()

    async def progress(i: int) -> None:
        seen: list[tuple[float, str | None]] = []

        async def on_progress(params: dict[str, Any]) -> None:
            seen.append((params["progress"], params.get("message")))

        text = await s.call_tool(f"{upstream}__test_tool_with_progress", on_progress=on_progress)
        client.outcomes[f"progress {i}"] = (text["content"][0]["text"], seen)

    async def sampling(i: int) -> None:
        prompt = f"{client.name}'s prompt {i}"
        tool = f"{upstream}__test_sampling"
        client.outcomes[f"sampling {i}"] = await outcome(s, tool, {"prompt": prompt})

    async def elicitation(i: int) -> None:
        message = f"{client.name}'s question {i}"
        tool = f"{upstream}__test_elicitation"
        client.outcomes[f"elicitation {i}"] = await outcome(s, tool, {"message": message})

    async with anyio.create_task_group() as tg:
        for i in range(2):
            tg.start_soon(progress, i)
            tg.start_soon(sampling, i)
            tg.start_soon(elicitation, i)
        if logging:
            tg.start_soon(s.call_tool, f"{upstream}__test_tool_with_logging")


@UPSTREAM_ERAS
async def test_concurrent_clients_see_only_their_own(url: str, upstream: str) -> None:
    ada, bob = Client("ada", Era.LEGACY), Client("bob", Era.MODERN)
    go = anyio.Event()
    with anyio.fail_after(30):
        async with (
            session(url, ada) as sa,
            session(url, bob) as sb,
            anyio.create_task_group() as tg,
        ):
            tg.start_soon(exercise, sa, ada, upstream, go, True)
            tg.start_soon(exercise, sb, bob, upstream, go, False)
            go.set()

    # Nothing of one client's reaches the other.
    for me, other in ((ada, bob), (bob, ada)):
        assert not me.stray, f"{me.name} got progress for calls it did not make: {me.stray}"
        assert not [p for p in me.sampled if not p.startswith(f"{me.name}'s")], me.sampled
        assert not [m for m in me.elicited if not m.startswith(f"{me.name}'s")], me.elicited
        assert not [o for o in me.outcomes.values() if other.name in str(o)], me.outcomes
    # Only ada called the logging tool; bob asked for every level and must hear nothing.
    assert bob.logs == [], bob.logs
    assert set(ada.logs) <= set(FIXTURE_LOGS), ada.logs

    # And each gets all of its own. README "Known gaps": a 2025-11-25 stdio upstream's
    # mid-call sampling and elicitation reach a client only while that upstream has a single
    # call in flight, so there a failed call is tolerated (a misrouted one never is, see
    # above). Over HTTP each call's POST stream says whose a request is: nothing may fail.
    may_fail = upstream == "legacy"
    for me in (ada, bob):
        for i in range(2):
            progress = me.outcomes[f"progress {i}"]
            assert progress == ("Progress test completed", PROGRESS), (me.name, progress)
            sampled = me.outcomes[f"sampling {i}"]
            if isinstance(sampled, str) or not may_fail:
                assert sampled == f"LLM response: {me.name} answers {me.name}'s prompt {i}"
            elicited = me.outcomes[f"elicitation {i}"]
            if isinstance(elicited, str) or not may_fail:
                assert isinstance(elicited, str), elicited
                assert f"'username': '{me.name}'" in elicited, elicited
        if upstream != "legacy":
            assert sorted(me.sampled) == [f"{me.name}'s prompt {i}" for i in range(2)]
            assert sorted(me.elicited) == [f"{me.name}'s question {i}" for i in range(2)]


@UPSTREAM_ERAS
@ERAS
async def test_a_lone_call_gets_its_progress_and_logs(url: str, upstream: str, era: Era) -> None:
    chatty, quiet = Client("chatty", era), Client("quiet", era)
    progress: list[tuple[float, str | None]] = []

    async def on_progress(params: dict[str, Any]) -> None:
        progress.append((params["progress"], params.get("message")))

    with anyio.fail_after(15):
        async with session(url, chatty, "info") as s:
            await s.call_tool(f"{upstream}__test_tool_with_progress", on_progress=on_progress)
            await s.call_tool(f"{upstream}__test_tool_with_logging")
        async with session(url, quiet, "error") as s:
            await s.call_tool(f"{upstream}__test_tool_with_logging")
    assert (progress, chatty.logs) == (PROGRESS, FIXTURE_LOGS)
    assert quiet.logs == []  # below the level it asked for


@ERAS
async def test_an_abandoned_call_does_not_talk_to_the_next_caller(url: str, era: Era) -> None:
    bob, ada = Client("bob", era), Client("ada", era)
    with anyio.fail_after(15):
        async with session(url, bob) as sb, session(url, ada) as sa:
            # bob gives up on a call; the upstream (ignoring the cancellation) keeps logging
            # for it, and ada's call to the same upstream is the only one in flight.
            with pytest.raises(BastionError):
                await sb.call_tool(
                    "chatty__say", {"text": "bob's secret", "seconds": 1.5}, timeout=0.3
                )
            assert await outcome(sa, "chatty__wait", {"seconds": 1.0}) == "waited"
    assert ada.logs == [], f"ada got what the upstream said for bob's call: {ada.logs[:3]}"
