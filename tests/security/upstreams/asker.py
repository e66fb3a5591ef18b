"""A 2025-11-25 stdio upstream that keeps asking its client (DS-3, TC-4).

Run as ``python asker.py LOG``: newline-delimited JSON-RPC on stdio,
standard library only; ``server/discover`` is refused, so the gateway speaks 2025-11-25 to it
and parks a 2026-07-28 client's calls. Its tools:

* ``ask``: asks ``n`` elicitations at once (argument ``n``, default 1), waits for all the
  answers, and asks again, forever; it stops at the first error answer, and writes each
  error it got to LOG as one JSON line;
* ``sample``: asks for one sampling/createMessage with ``includeContext: "allServers"``
  and answers with the client's reply.
"""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path
from typing import Any

_writing = threading.Lock()
_waiting: dict[str, tuple[threading.Event, list[dict[str, Any]]]] = {}
_ids = iter(range(1, 1 << 30))
LOG = Path(sys.argv[1]) if len(sys.argv) > 1 else None


def write(message: dict[str, Any]) -> None:
    with _writing:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()


def text(value: str) -> dict[str, Any]:
    return {"content": [{"type": "text", "text": value}]}


def request(method: str, params: dict[str, Any]) -> tuple[threading.Event, list[dict[str, Any]]]:
    key = f"s{next(_ids)}"
    slot: tuple[threading.Event, list[dict[str, Any]]] = (threading.Event(), [])
    _waiting[key] = slot
    write({"jsonrpc": "2.0", "id": key, "method": method, "params": params})
    return slot


def ask(rid: Any, n: int) -> None:
    form = {"type": "object", "properties": {"v": {"type": "string"}}}
    while True:
        slots = [
            request("elicitation/create", {"message": "again?", "requestedSchema": form})
            for _ in range(n)
        ]
        errors = []
        for done, answer in slots:
            done.wait()
            if "error" in answer[0]:
                errors.append(answer[0]["error"])
        if errors:
            if LOG is not None:
                with LOG.open("a") as log:
                    log.writelines(json.dumps(error) + "\n" for error in errors)
            write({"jsonrpc": "2.0", "id": rid, "result": text(f"{len(errors)} refused")})
            return


def sample(rid: Any) -> None:
    params = {
        "messages": [{"role": "user", "content": {"type": "text", "text": "hi"}}],
        "maxTokens": 10,
        "includeContext": "allServers",
    }
    done, answer = request("sampling/createMessage", params)
    done.wait()
    write({"jsonrpc": "2.0", "id": rid, "result": text(json.dumps(answer[0]))})


TOOLS = {"ask": {"type": "object"}, "sample": {"type": "object"}}


def handle(message: dict[str, Any]) -> None:
    method, rid = message.get("method"), message.get("id")
    params = message.get("params") or {}
    if method is None:  # a response to one of our requests
        slot = _waiting.pop(str(rid), None)
        if slot is not None:
            slot[1].append(message)
            slot[0].set()
        return
    if rid is None:
        return
    if method == "initialize":
        result: dict[str, Any] = {
            "protocolVersion": "2025-11-25",
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "asker", "version": "0"},
        }
    elif method == "ping":
        result = {}
    elif method == "tools/list":
        result = {"tools": [{"name": n, "inputSchema": s} for n, s in TOOLS.items()]}
    elif method == "tools/call" and params.get("name") == "ask":
        n = int((params.get("arguments") or {}).get("n", 1))
        threading.Thread(target=ask, args=(rid, n), daemon=True).start()
        return
    elif method == "tools/call" and params.get("name") == "sample":
        threading.Thread(target=sample, args=(rid,), daemon=True).start()
        return
    else:
        write({"jsonrpc": "2.0", "id": rid, "error": {"code": -32601, "message": "Not found"}})
        return
    write({"jsonrpc": "2.0", "id": rid, "result": result})


if __name__ == "__main__":
    for line in sys.stdin:
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if isinstance(message, dict):
            handle(message)
