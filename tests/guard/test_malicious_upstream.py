"""End to end (TC-1..TC-4, AD-3, UP-1 fixture): the malicious upstream runs as a real process;
its real ``tools/list`` and call results go through the scanner, the pins and the result
filter, and each threat it carries is caught, including the rug pull it performs after the
first list (announced with ``notifications/tools/list_changed``)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest

from bastion.client import ClientHandlers, ClientSession
from bastion.guard import PinStore, PoisonScanner, Sanitiser, tool_hash
from bastion.protocol.jsonrpc import Notification
from bastion.protocol.versions import Era
from bastion.transport.http_client import HttpClientStream
from bastion.transport.stdio import StdioChild
from tests.guard.upstreams.malicious import AWS_KEY, GITHUB_TOKEN
from tests.support import ROOT

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

ARGV = [sys.executable, "-m", "tests.guard.upstreams.malicious"]
OTHERS = {"files": ["read_file", "write_file"]}  # the honest server beside it


@asynccontextmanager
async def _session(changed: anyio.Event) -> AsyncIterator[ClientSession]:
    async def on_note(note: Notification) -> None:
        if note.method == "notifications/tools/list_changed":
            changed.set()

    handlers = ClientHandlers(on_notification=on_note)
    # 2025-11-25: the era with a channel for list_changed outside a request.
    async with (
        StdioChild(ARGV, cwd=str(ROOT), name="malicious") as child,
        ClientSession(child, era=Era.LEGACY, handlers=handlers) as session,
    ):
        await session.connect()
        yield session


async def test_tc1_tc2_tc3_real_tools_list_is_caught(tmp_path: Path) -> None:
    changed = anyio.Event()
    store = PinStore(tmp_path / "pins.db")
    with store, anyio.fail_after(30):
        async with _session(changed) as session:
            tools = await session.list_tools()
            review = store.review("evil", tools, others=OTHERS)
            held = {h.tool: h for h in review.held}
            shown = {t["name"] for t in review.allowed}
            # TC-1: poisoned description, and poison only deep in the input schema.
            assert held["add"].reason == "new-poisoned"
            assert {"hidden-instruction", "sensitive-file"} <= {
                f.kind for f in held["add"].findings
            }
            deep = held["translate"]
            assert deep.reason == "new-poisoned"
            paths = {f.path for f in deep.findings}
            assert paths == {"$.inputSchema.properties.options.properties.style.description"}
            assert {f.kind for f in deep.findings} >= {"hidden-instruction", "exfiltration"}
            # TC-3: same bare name as the files server's tool, and naming files__read_file.
            assert held["read_file"].reason == "shadowing"
            # The honest-looking ones are pinned on first use.
            assert shown == {
                "weather", "fetch_notes", "echo_headers", "fail", "echo_credential",
                "fail_credential",
            }  # fmt: skip
            pinned_weather = store.approved("evil")["weather"]

            # TC-2: the upstream swaps weather's description and says its list changed.
            await changed.wait()
            relisted = await session.list_tools()
            after = store.review("evil", relisted, others=OTHERS)
            weather = next(h for h in after.held if h.tool == "weather")
            assert weather.reason == "changed" and weather.hash != pinned_weather
            assert "weather" not in {t["name"] for t in after.allowed}
            [event] = [e for e in after.events if e.tool == "weather"]
            assert event.action == "held" and event.old_hash == pinned_weather
            assert event.changed == ["description"]
            [pending] = [p for p in store.pending() if p.tool == "weather"]
            assert "<IMPORTANT>" in pending.diff and "~/.aws/credentials" in pending.diff
            # Until an admin approves it, the pin holds; approving shows it again.
            new = next(t for t in relisted if t["name"] == "weather")
            store.approve("evil", "weather", tool_hash(new), by="admin")
            assert "weather" in {t["name"] for t in store.review("evil", relisted).allowed}


async def test_tc4_ad3_real_results_are_filtered(tmp_path: Path) -> None:
    sanitiser = Sanitiser()
    with anyio.fail_after(30):
        async with _session(anyio.Event()) as session:
            result = await session.call_tool("fetch_notes", {})
            resource = await session.read_resource("note://deploy")
            prompt = await session.get_prompt("summarise")
            prompts = await session.list_all("prompts/list", "prompts")
    raw = result["content"][0]["text"]
    assert AWS_KEY in raw and "\u200b" in raw  # the upstream really sent them
    out = sanitiser.tool_result(result)
    text = out.value["content"][0]["text"]
    for secret in (AWS_KEY, GITHUB_TOKEN, "MIIEowIBAAKCAQEA", "hunter2"):
        assert secret not in text
        assert secret not in repr(out.value["structuredContent"])
    assert not any(c in text for c in ("\u200b", "\u200d", "\u2062", "\U000e0041"))
    kinds = {f.kind for f in out.findings}
    assert {"secret", "injection", "invisible-character"} <= kinds
    assert text.startswith("[Bastion: untrusted output follows")
    blocked = Sanitiser(injection_action="block").tool_result(result)
    assert blocked.blocked and blocked.value["isError"] is True
    contents = sanitiser.resource_contents(resource["contents"])
    assert AWS_KEY not in repr(contents.value)
    assert AWS_KEY not in repr(sanitiser.prompt_result(prompt).value)
    # TC-1 for prompts: the prompt's description is poisoned.
    [summarise] = prompts
    assert PoisonScanner().scan_prompt(summarise)


@pytest.fixture
def http_port() -> Iterator[int]:
    process = subprocess.Popen([*ARGV, "--http", "0"], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("PORT "), line
        yield int(line.split()[1])
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


async def test_up1_fixture_http_face_echoes_the_headers_it_received(http_port: int) -> None:
    """The fixture's ``echo_headers`` shows what reached the upstream: pointed at directly,
    it sees our Authorization; through the gateway it must not (UP-1, the lead's test)."""
    url = f"http://127.0.0.1:{http_port}/mcp"
    with anyio.fail_after(30):
        async with (
            HttpClientStream(url, headers={"Authorization": "Bearer client-token"}) as stream,
            ClientSession(stream) as session,
        ):
            await session.connect()
            result = await session.call_tool("echo_headers", {})
    headers = result["structuredContent"]
    assert headers["authorization"] == "Bearer client-token"
    assert headers["host"] == f"127.0.0.1:{http_port}"
