"""The HTTP client face against a hostile upstream on loopback (UP-4, IN-5): an SSE
``retry`` too big to wait for is ignored, not a crash of the upstream's session, and the URL's
user info and query never reach the log."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import anyio
import pytest

from bastion.protocol.jsonrpc import Notification, Request, Response
from bastion.transport import http_client
from bastion.transport.http_client import HttpClientStream

ANSWER = {"jsonrpc": "2.0", "id": 2, "result": {"resumed": True}}


class Upstream(BaseHTTPRequestHandler):
    """initialize: a session; a notification: the connection dropped; any other POST: an
    SSE stream with an event id and a huge ``retry`` that ends before the answer; GET with
    ``Last-Event-ID``: the answer."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        return None

    def _stream(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
        self.close_connection = True

    def do_POST(self) -> None:
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if request.get("method") == "initialize":
            body = json.dumps({"jsonrpc": "2.0", "id": request["id"], "result": {}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Mcp-Session-Id", "s1")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if "id" not in request:  # a notification: the connection drops (logged by the client)
            self.close_connection = True
            return
        self._stream(b"id: 1\nretry: 1" + b"0" * 400 + b"\ndata: \n\n")

    def do_GET(self) -> None:
        if self.headers.get("Last-Event-ID") != "1":
            self.send_response(405)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self._stream(b"event: message\ndata: " + json.dumps(ANSWER).encode() + b"\n\n")


@pytest.fixture
def upstream() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_a_huge_sse_retry_is_ignored_and_the_stream_is_resumed_UP4(
    upstream: int, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"http://svc:PassW0rd-in-url@127.0.0.1:{upstream}/mcp?api_key=QuerySecret77"

    async def run() -> object:
        async with HttpClientStream(url) as stream:
            params = {"protocolVersion": "2025-11-25", "capabilities": {}}
            await stream.send(Request(id=1, method="initialize", params=params))
            await stream.receive()
            await stream.send(Notification(method="notifications/initialized"))
            await stream.send(Request(id=2, method="tools/call", params={"name": "x"}))
            with anyio.fail_after(10):
                return await stream.receive()

    with caplog.at_level(logging.DEBUG, logger=http_client.__name__):
        answer = anyio.run(run)
    assert answer == Response(id=2, result={"resumed": True})
    logged = caplog.text
    assert "failed" in logged and f"http://127.0.0.1:{upstream}/mcp" in logged
    assert "PassW0rd-in-url" not in logged and "QuerySecret77" not in logged
