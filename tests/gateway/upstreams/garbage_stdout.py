"""An upstream that writes garbage to stdout before it answers: non-JSON, invalid UTF-8,
JSON that is not JSON-RPC, nesting past any sane depth, a response to a request never
sent, an unknown notification, an unknown request, and a line over 4 MiB. Every line the
gateway sends it is appended to the file named by argv[1].

With ``--bad-progress`` a call is also sent progress for its token that is not a number;
with ``--bad-log-level``, a log message with a made-up level while it runs."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

from _jsonrpc import echo, serve, write, write_raw

OVERLONG = 4 * 1024 * 1024 + 4096  # bytes; the gateway's line cap is 4 MiB
GARBAGE = (
    b"this is not json\n",
    b"{\n",
    b"\xff\xfe\xfd invalid utf-8\n",
    b"[]\n",
    b"42\n",
    b"[" * 100_000 + b"]" * 100_000 + b"\n",
    b'{"jsonrpc": "2.0"}\n',
    b'{"jsonrpc": "2.0", "id": 987654, "result": {}}\n',
    b'{"jsonrpc": "2.0", "id": null, "error": {"code": -1, "message": "what"}}\n',
    b'{"jsonrpc": "2.0", "method": "notifications/made_up", "params": {"x": 1}}\n',
    b'{"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progressToken": 7}}\n',
    b'{"jsonrpc": "2.0", "id": "garbage-req", "method": "made/up", "params": {}}\n',
    b"\n\r\n   \n",
)


def spew() -> None:
    for line in GARBAGE:
        write_raw(line)
    write_raw(b'{"jsonrpc": "2.0", "id": 1, "result": {"pad": "' + b"x" * OVERLONG + b'"}}\n')


def garbled_echo(rid: Any, params: dict[str, Any]) -> dict[str, Any]:
    spew()
    token = (params.get("_meta") or {}).get("progressToken")
    if "--bad-progress" in sys.argv and token is not None:
        for bad in ({"progress": "half"}, {"progress": None}, {"progress": 1, "total": "x"}):
            note = {"progressToken": token, **bad}
            write({"jsonrpc": "2.0", "method": "notifications/progress", "params": note})
    if "--bad-log-level" in sys.argv:
        for level in ("loud", None):
            note = {"level": level, "data": "a log line with a made-up level"}
            write({"jsonrpc": "2.0", "method": "notifications/message", "params": note})
    return echo(rid, params)


def recorded(path: str) -> Iterator[bytes]:
    with open(path, "ab") as log:
        for line in sys.stdin.buffer:
            log.write(line)
            log.flush()
            yield line


if __name__ == "__main__":
    spew()  # before the gateway has even said hello
    serve({"echo": garbled_echo}, recorded(sys.argv[1]))
