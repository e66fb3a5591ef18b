"""Streamable HTTP server face, end to end: a real ``bastion fixture --port`` process and
raw HTTP requests, for the guards (TR-*, DS-1), both eras, sessions, SSE and resumption."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support import fixture_http_server

pytestmark = pytest.mark.e2e

ACCEPT = "application/json, text/event-stream"
META = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientCapabilities": {},
}
INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "raw", "version": "1"},
    },
}


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with fixture_http_server() as mcp_url:
        yield mcp_url


def post(url: str, body: Any, **headers: str) -> httpx.Response:
    base = {"content-type": "application/json", "accept": ACCEPT}
    base.update({k.replace("_", "-"): v for k, v in headers.items()})
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(url, content=content, headers=base, timeout=10)


def sse_messages(text: str) -> list[dict[str, Any]]:
    return [
        json.loads(line[6:])
        for line in text.splitlines()
        if line.startswith("data: ") and line[6:].strip()
    ]


def modern(
    url: str, method: str, params: dict[str, Any] | None = None, **headers: str
) -> httpx.Response:
    body = {
        "jsonrpc": "2.0",
        "id": 5,
        "method": method,
        "params": {**(params or {}), "_meta": META},
    }
    hdrs = {"mcp_protocol_version": "2026-07-28", "mcp_method": method, **headers}
    return post(url, body, **hdrs)


def test_dns_rebinding_guards_tr1_tr2(url: str) -> None:
    assert post(url, INIT, host="evil.example").status_code == 421
    refused = post(url, INIT, origin="http://evil.example")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == -32600 and refused.json()["id"] is None
    port = url.split(":")[2].split("/", maxsplit=1)[0]
    assert post(url, INIT, origin=f"http://localhost:{port}").status_code == 200
    # Same host, another port is another origin.
    assert post(url, INIT, origin="http://localhost:1").status_code == 403


def test_media_types_and_body_limits_tr5_tr6_ds1(url: str) -> None:
    assert post(url, INIT, content_type="text/plain").status_code == 415
    assert post(url, INIT, accept="application/json").status_code == 406
    batch = post(url, [INIT])
    assert batch.status_code == 400 and batch.json()["error"]["code"] == -32600
    garbage = post(url, b"{nope")
    assert garbage.status_code == 400 and garbage.json()["error"]["code"] == -32700


def test_declared_oversize_body_is_refused_before_reading_ds1(url: str) -> None:
    # Raw socket: announce a 5 MB body and send none of it; the answer must come at once
    # (the cap applies to Content-Length before a byte of the body is read).
    host, port = url.split("/")[2].split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(
            f"POST /mcp HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
            f"Accept: {ACCEPT}\r\nContent-Length: 5000000\r\n\r\n".encode()
        )
        head = sock.recv(4096).decode("latin-1")
    assert head.startswith("HTTP/1.1 413")
    assert "connection: close" in head.lower()


def test_exact_path_only_tr11(url: str) -> None:
    for path in ("/mcp/", "/MCP", "/mcp;x", "/"):
        assert post(url.replace("/mcp", path), INIT).status_code == 404


def test_legacy_session_lifecycle(url: str) -> None:
    opened = post(url, INIT)
    assert opened.status_code == 200
    sid = opened.headers["mcp-session-id"]
    assert len(sid) >= 32 and all(0x21 <= ord(ch) <= 0x7E for ch in sid)  # SE-1
    listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
    assert post(url, listing).status_code == 400
    assert post(url, listing, mcp_session_id="not-a-session").status_code == 404
    note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    assert post(url, note, mcp_session_id=sid).status_code == 202
    answer = post(url, listing, mcp_session_id=sid, mcp_protocol_version="2025-11-25")
    assert answer.headers["content-type"] == "text/event-stream"
    assert answer.text.startswith("id: ")  # priming event first, so the stream can resume
    assert "retry: " in answer.text
    tools = sse_messages(answer.text)[-1]["result"]["tools"]
    assert tools[0]["name"] == "test_simple_text"
    # An older legacy version header inside a 2025-11-25 session is accepted.
    assert post(url, listing, mcp_session_id=sid, mcp_protocol_version="2025-03-26").is_success
    assert httpx.delete(url, headers={"mcp-session-id": sid}).status_code == 200
    assert post(url, listing, mcp_session_id=sid).status_code == 404


def test_legacy_resume_with_last_event_id(url: str) -> None:
    sid = post(url, INIT).headers["mcp-session-id"]
    call = {
        "jsonrpc": "2.0",
        "id": 9,
        "method": "tools/call",
        "params": {"name": "test_reconnection", "arguments": {}},
    }
    cut = post(url, call, mcp_session_id=sid)
    assert all("result" not in m for m in sse_messages(cut.text))  # the server closed it early
    last_id = [line[4:] for line in cut.text.splitlines() if line.startswith("id: ")][-1]
    with httpx.stream(
        "GET",
        url,
        timeout=10,
        headers={"accept": "text/event-stream", "mcp-session-id": sid, "last-event-id": last_id},
    ) as r:
        assert r.status_code == 200
        body = ""
        for chunk in r.iter_text():
            body += chunk
            if '"result"' in body:
                break
    result = [m for m in sse_messages(body) if m.get("id") == 9]
    assert result[0]["result"]["content"][0]["text"] == "Reconnection test completed"


def test_modern_header_checks_tr12(url: str) -> None:
    found = modern(url, "server/discover")
    assert found.status_code == 200 and found.json()["result"]["resultType"] == "complete"
    wrong_method = modern(url, "tools/list", mcp_method="prompts/list")
    assert wrong_method.status_code == 400 and wrong_method.json()["error"]["code"] == -32020
    call = {"name": "echo", "arguments": {"text": "x"}}
    assert modern(url, "tools/call", call, mcp_name="echo").status_code == 200
    assert modern(url, "tools/call", call, mcp_name="other").json()["error"]["code"] == -32020
    assert modern(url, "tools/call", call).json()["error"]["code"] == -32020  # Mcp-Name missing
    old = modern(url, "tools/list", mcp_protocol_version="2026-01-01")
    assert old.status_code == 400 and old.json()["error"]["code"] == -32020  # header != _meta
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/list",
        "params": {"_meta": {**META, "io.modelcontextprotocol/protocolVersion": "1900-01-01"}},
    }
    unsupported = post(url, body, mcp_protocol_version="1900-01-01", mcp_method="tools/list")
    assert unsupported.status_code == 400
    assert unsupported.json()["error"]["code"] == -32022
    gone = modern(url, "initialize")
    assert gone.status_code == 404 and gone.json()["error"]["code"] == -32601
    get = httpx.get(
        url, headers={"accept": "text/event-stream", "mcp-protocol-version": "2026-07-28"}
    )
    assert get.status_code == 405


def test_modern_progress_streams_as_sse(url: str) -> None:
    params = {
        "name": "test_tool_with_progress",
        "arguments": {},
        "_meta": {**META, "progressToken": "tok"},
    }
    body = {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": params}
    r = post(
        url,
        body,
        mcp_protocol_version="2026-07-28",
        mcp_method="tools/call",
        mcp_name="test_tool_with_progress",
    )
    assert r.headers["content-type"] == "text/event-stream"
    messages = sse_messages(r.text)
    assert [m["params"]["progress"] for m in messages[:-1]] == [0, 50, 100]
    assert {m["params"]["progressToken"] for m in messages[:-1]} == {"tok"}
    assert messages[-1]["id"] == 3 and messages[-1]["result"]["resultType"] == "complete"


def raw_exchange(url: str, request: bytes) -> tuple[str, bool]:
    """Send raw bytes; the response head, and whether the server then closed the connection."""
    host, port = url.split("/")[2].split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        sock.settimeout(2)
        closed = False
        try:
            while chunk := sock.recv(65536):
                pass
            closed = True
        except (TimeoutError, ConnectionResetError):
            closed = False
    return data.partition(b"\r\n\r\n")[0].decode("latin-1"), closed


def framed(extra_headers: str, body: bytes = b"") -> bytes:
    return (
        f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Accept: {ACCEPT}\r\n{extra_headers}\r\n"
    ).encode() + body


def test_request_head_over_64_kib_is_431_and_closed_tr9(url: str) -> None:
    many = "".join(f"X-Filler-{i}: {'a' * 1000}\r\n" for i in range(70))  # ~72 KB of headers
    head, closed = raw_exchange(url, framed(many + "Content-Length: 2\r\n", b"{}"))
    assert head.startswith("HTTP/1.1 431")
    assert closed


def test_request_head_just_under_the_cap_is_served_tr9(url: str) -> None:
    some = "".join(f"X-Filler-{i}: {'a' * 1000}\r\n" for i in range(50))  # ~51 KB
    body = json.dumps(
        {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": META}}
    )
    head, _ = raw_exchange(
        url,
        framed(
            some
            + "MCP-Protocol-Version: 2026-07-28\r\nMcp-Method: tools/list\r\n"
            + f"Content-Length: {len(body)}\r\n",
            body.encode(),
        ),
    )
    assert head.startswith("HTTP/1.1 200")


def test_length_and_chunked_together_is_refused_and_closed_tr9(url: str) -> None:
    head, closed = raw_exchange(
        url, framed("Content-Length: 2\r\nTransfer-Encoding: chunked\r\n", b"2\r\n{}\r\n0\r\n\r\n")
    )
    assert head.startswith("HTTP/1.1 400")
    assert closed


def test_differing_duplicate_lengths_are_refused_and_closed_tr9(url: str) -> None:
    head, closed = raw_exchange(url, framed("Content-Length: 2\r\nContent-Length: 3\r\n", b"{} "))
    assert head.startswith("HTTP/1.1 400")
    assert closed


def test_unknown_transfer_coding_is_refused_and_closed_tr9(url: str) -> None:
    head, closed = raw_exchange(url, framed("Transfer-Encoding: gzip\r\n", b"{}"))
    assert head.split(" ")[1] in ("400", "501")
    assert closed
