"""A 2026-07-28 client that leaves (closes its connection) mid-call cancels the call: the
gateway sends ``notifications/cancelled`` for it to the upstream, and keeps serving."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest

from bastion.protocol.versions import Era
from tests.gateway.test_faults import GOOD, connected, echo, run_gateway, script

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

META = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientCapabilities": {},
}


def _post_and_leave(base: str, body: dict[str, object], wait: float) -> bytes:
    """POST ``body`` on a raw socket, wait, then close it; what had arrived by then."""
    host, port = base.removeprefix("http://").split(":")
    data = json.dumps(body).encode()
    head = (
        f"POST /mcp HTTP/1.1\r\nhost: {host}:{port}\r\ncontent-type: application/json\r\n"
        f"accept: application/json, text/event-stream\r\n"
        f"mcp-protocol-version: 2026-07-28\r\nmcp-method: tools/call\r\n"
        f"mcp-name: {body['params']['name']}\r\n"  # type: ignore[index]
        f"content-length: {len(data)}\r\n\r\n"
    ).encode()
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(head + data)
        sock.settimeout(wait)
        try:
            return sock.recv(65536)
        except TimeoutError:
            return b""


async def test_client_leaving_cancels_the_upstream_call(tmp_path: Path) -> None:
    record = tmp_path / "cancelled.jsonl"
    servers = {"good": GOOD, "slow": script("record_cancel.py", str(record))}
    with run_gateway(tmp_path, servers) as gw:
        call = {
            "jsonrpc": "2.0",
            "id": 7,
            "method": "tools/call",
            "params": {"name": "slow__wait", "arguments": {}, "_meta": META},
        }
        answered = _post_and_leave(gw.base, call, wait=0.5)
        assert answered == b"", f"the call was answered before the client left: {answered!r}"
        deadline = time.monotonic() + 3
        while not (record.exists() and record.read_text().strip()):
            assert time.monotonic() < deadline, f"no cancellation upstream:\n{gw.stderr()}"
            time.sleep(0.02)
        [cancelled] = [json.loads(line) for line in record.read_text().splitlines()]
        # The upstream hears of its own request id (not the client's 7), once.
        assert isinstance(cancelled["requestId"], int | str)
        async with connected(gw.url, era=Era.MODERN) as s:
            await echo(s, "slow__echo", "still serving", within=2)
            await echo(s, "good__echo", "and the others", within=2)
