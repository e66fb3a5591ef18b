"""``bastion stdio``'s fast start: ``initialize`` is answered before the heavy imports, with
exactly the answer the full server would give, and the session carries on from there."""

from __future__ import annotations

import json
import os
import secrets
import subprocess

import anyio
import pytest

from bastion.config import Config
from bastion.gateway import Gateway
from bastion.protocol.request_state import RequestStateSealer
from tests.server.raw import raw_client
from tests.support import BASTION

pytestmark = pytest.mark.e2e

INIT = {
    "jsonrpc": "2.0",
    "id": 7,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {"sampling": {}},
        "clientInfo": {"name": "desk", "version": "1"},
    },
}


def run_stdio(*messages: dict[str, object]) -> list[dict[str, object]]:
    data = "".join(json.dumps(m) + "\n" for m in messages).encode()
    out = subprocess.run(
        [str(BASTION), "stdio"], input=data, capture_output=True, timeout=60, check=True
    )
    return [json.loads(line) for line in out.stdout.splitlines()]


def full_server_answer() -> dict[str, object]:
    gateway = Gateway(Config(), os.environ, sealer=RequestStateSealer([secrets.token_bytes(32)]))

    async def ask() -> dict[str, object]:
        async with raw_client(gateway.app) as client:
            return await client.call("initialize", INIT["params"], 7)  # type: ignore[arg-type]

    return anyio.run(ask)


def test_fast_answer_is_the_full_servers_answer_and_the_session_goes_on() -> None:
    call = {
        "jsonrpc": "2.0",
        "id": 8,
        "method": "tools/call",
        "params": {"name": "echo", "arguments": {"text": "after the fast start"}},
    }
    answers = run_stdio(INIT, {"jsonrpc": "2.0", "method": "notifications/initialized"}, call)
    by_id = {a.get("id"): a for a in answers if "id" in a}
    assert by_id[7] == full_server_answer()
    assert by_id[7]["result"]["protocolVersion"] == "2025-06-18"  # type: ignore[index]
    assert by_id[8]["result"]["content"][0]["text"] == "after the fast start"  # type: ignore[index]


def test_other_first_messages_go_to_the_full_server() -> None:
    meta = {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
    }
    discover = {"jsonrpc": "2.0", "id": 1, "method": "server/discover", "params": {"_meta": meta}}
    bad_init = {"jsonrpc": "2.0", "id": 2, "method": "initialize", "params": {}}
    answers = run_stdio(discover, bad_init)
    by_id = {a.get("id"): a for a in answers if "id" in a}
    assert "2026-07-28" in by_id[1]["result"]["supportedVersions"]  # type: ignore[index]
    assert by_id[2]["error"]["code"] == -32602  # type: ignore[index]
