"""An upstream that appends the name of every tool it is called with, as one line, to the
file named by its first argument, before it handles the call; its ``wait`` tool never
answers (only a cancellation ends it), ``echo`` works."""

from __future__ import annotations

import json
import sys
from typing import Any

from _jsonrpc import echo, handle


def wait(rid: Any, params: dict[str, Any]) -> None:
    return None  # answered never


if __name__ == "__main__":
    record = sys.argv[1]
    for line in sys.stdin.buffer:
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if isinstance(message, dict) and message.get("method") == "tools/call":
            with open(record, "a") as out:
                out.write(str((message.get("params") or {}).get("name")) + "\n")
        handle(line, {"echo": echo, "wait": wait})
