"""A minimal JSON-RPC server on stdio, shared by the misbehaving test upstreams.

Newline-delimited JSON in and out, standard library only. ``server/discover`` is refused
(-32601) so the gateway falls back to ``initialize``; ``initialize``, ``ping`` and
``tools/list`` get minimal answers; ``tools/call`` goes to the script's tool functions,
called with the request id and the request's params. A tool function returns the result to
send, or None to send nothing now (it answers later from a thread, or never).
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

Tool = Callable[[Any, dict[str, Any]], "dict[str, Any] | None"]
_writing = threading.Lock()  # tools may answer from threads


def write_raw(data: bytes) -> None:
    with _writing:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()


def write(message: dict[str, Any]) -> None:
    write_raw(json.dumps(message).encode() + b"\n")


def text_result(text: str) -> dict[str, Any]:
    return {"content": [{"type": "text", "text": text}]}


def echo(rid: Any, params: dict[str, Any]) -> dict[str, Any]:
    """The ``echo`` tool every script offers: a working call on the misbehaving upstream."""
    return text_result(str((params.get("arguments") or {}).get("text")))


def answer(request: dict[str, Any], tools: Mapping[str, Tool]) -> dict[str, Any] | None:
    """The response to one request, or None when there is nothing to send (yet)."""
    method, rid = request.get("method"), request.get("id")
    params = request.get("params") or {}
    if method == "initialize":
        result: dict[str, Any] = {
            "protocolVersion": params.get("protocolVersion", "2025-11-25"),
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "misbehaving", "version": "0"},
        }
    elif method == "ping":
        result = {}
    elif method == "tools/list":
        result = {"tools": [{"name": n, "inputSchema": {"type": "object"}} for n in tools]}
    elif method == "tools/call" and params.get("name") in tools:
        tool_result = tools[params["name"]](rid, params)
        if tool_result is None:
            return None
        result = tool_result
    else:
        error = {"code": -32601, "message": "Method not found"}
        return {"jsonrpc": "2.0", "id": rid, "error": error}
    return {"jsonrpc": "2.0", "id": rid, "result": result}


def handle(line: bytes, tools: Mapping[str, Tool]) -> None:
    try:
        message = json.loads(line)
    except ValueError:
        return
    if isinstance(message, dict) and "method" in message and "id" in message:
        response = answer(message, tools)
        if response is not None:
            write(response)


def serve(tools: Mapping[str, Tool], lines: Iterable[bytes] | None = None) -> None:
    """Answer requests from stdin until it closes."""
    for line in sys.stdin.buffer if lines is None else lines:
        handle(line, tools)
