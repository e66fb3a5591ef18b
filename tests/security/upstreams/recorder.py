"""An HTTP MCP upstream that writes down what reaches it (UP-1, UP-4, AZ-4).

Run as ``python -m tests.security.upstreams.recorder PORT LOG``: Bastion's own ``ServerApp``
behind its ``StreamableHttpApp`` and ``serve_http``, wrapped in an ASGI layer that appends
one JSON line per HTTP request to LOG (method, path, every header, the body). Its tools:

* ``whoami``: echoes its arguments (so a call that reached it is visible in the log);
* ``forbidden``: a tool the test policy never grants to role ``dev``, which claims to be
  harmless (``readOnlyHint``), as an untrusted upstream may (TC-5);
* ``sleepy``: answers after a minute (the gateway's outbound timeout must end it first);
* ``boom``: answered by the wrapper with an HTTP 500 whose body names an internal URL and
  a credential, as a broken or hostile upstream might.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Final

import anyio

from bastion._types import JSONObject
from bastion.protocol import types as t
from bastion.protocol.request_state import RequestStateSealer
from bastion.server import ServerApp, ServerConnection, ToolContext
from bastion.transport.http_run import serve_http
from bastion.transport.http_server import HttpSettings, StreamableHttpApp

# What the 500 of ``boom`` carries; none of it may reach a gateway client (UP-4).
INTERNAL_URL: Final = "http://10.20.30.40:8443/internal/admin"
LEAKED_SECRET: Final = "upstream-error-secret-7f3a9c"
BOOM_BODY: Final = f"crash at {INTERNAL_URL} with token={LEAKED_SECRET}".encode()


async def whoami(ctx: ToolContext, args: JSONObject) -> JSONObject:
    return {"content": [{"type": "text", "text": json.dumps(args, sort_keys=True)}]}


async def sleepy(ctx: ToolContext, args: JSONObject) -> JSONObject:
    await anyio.sleep(60)
    return {"content": [{"type": "text", "text": "too late"}]}


def build_app() -> ServerApp:
    app = ServerApp(name="recorder", version="1.0")
    obj: JSONObject = {"type": "object"}
    app.add_tool(t.Tool(name="whoami", description="Echo the arguments", inputSchema=obj), whoami)
    harmless: JSONObject = {"readOnlyHint": True, "destructiveHint": False}
    forbidden = t.Tool(
        name="forbidden", description="Never granted", inputSchema=obj, annotations=harmless
    )
    app.add_tool(forbidden, whoami)
    app.add_tool(t.Tool(name="sleepy", description="Slow", inputSchema=obj), sleepy)
    app.add_tool(t.Tool(name="boom", description="Fails upstream", inputSchema=obj), whoami)
    return app


class Recording:
    """ASGI wrapper: logs each HTTP request, answers ``boom`` calls with a leaky 500."""

    def __init__(self, inner: StreamableHttpApp, log: Path) -> None:
        self.inner = inner
        self.settings = inner.settings
        self.log = log

    def set_port(self, port: int) -> None:
        self.inner.set_port(port)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.inner(scope, receive, send)
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        entry = {
            "method": scope["method"],
            "path": scope["path"],
            "query": scope.get("query_string", b"").decode("latin-1"),
            "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in scope["headers"]],
            "body": body.decode("utf-8", "replace"),
        }
        with self.log.open("a") as out:
            out.write(json.dumps(entry) + "\n")
        if b'"boom"' in body:
            await send({"type": "http.response.start", "status": 500, "headers": []})
            await send({"type": "http.response.body", "body": BOOM_BODY})
            return
        replayed = False

        async def replay() -> Any:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.inner(scope, replay, send)


def main(port: int, log: Path) -> None:
    app = build_app()
    sealer = RequestStateSealer([b"k" * 32])
    http = StreamableHttpApp(
        lambda _who, _sid: ServerConnection(app, sealer), HttpSettings(port=port)
    )
    anyio.run(serve_http, Recording(http, log))  # type: ignore[arg-type]


if __name__ == "__main__":
    main(int(sys.argv[1]), Path(sys.argv[2]))
