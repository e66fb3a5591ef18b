"""An upstream that, once initialized, floods notifications as fast as the pipe takes them:
log messages, list_changed, resource updates and progress for tokens nobody holds. It
still answers requests between bursts (``echo`` included)."""

from __future__ import annotations

import json
import os
import select
import sys

from _jsonrpc import echo, handle, write_raw

BURST = 200  # notifications between two looks at stdin
PAYLOAD = "x" * 512


def burst(seq: int) -> bytes:
    notes = []
    params: dict[str, object]
    for i in range(BURST):
        n = seq * BURST + i
        kind = n % 4
        if kind == 0:
            method, params = "notifications/message", {"level": "info", "data": f"{n} {PAYLOAD}"}
        elif kind == 1:
            method, params = "notifications/tools/list_changed", {}
        elif kind == 2:
            method, params = "notifications/resources/updated", {"uri": f"test://r/{n}"}
        else:
            method, params = "notifications/progress", {"progressToken": f"t{n}", "progress": n}
        notes.append(json.dumps({"jsonrpc": "2.0", "method": method, "params": params}))
    return ("\n".join(notes) + "\n").encode()


def main() -> None:
    tools = {"echo": echo}
    stdin = sys.stdin.buffer.fileno()
    pending = b""
    flooding = False
    seq = 0
    while True:
        readable, _, _ = select.select([stdin], [], [], 0 if flooding else None)
        if readable:
            chunk = os.read(stdin, 65536)
            if not chunk:
                return
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                handle(line, tools)
                flooding = flooding or b"notifications/initialized" in line
        if flooding:
            write_raw(burst(seq))
            seq += 1


if __name__ == "__main__":
    main()
