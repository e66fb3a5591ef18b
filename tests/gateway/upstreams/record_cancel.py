"""An upstream whose ``wait`` tool never answers, and which appends the params of every
``notifications/cancelled`` it receives, as one JSON line, to the file named by its first
argument; ``echo`` works."""

from __future__ import annotations

import json
import sys
from typing import Any

from _jsonrpc import echo, handle


def wait(rid: Any, params: dict[str, Any]) -> None:
    return None  # answered never: only a cancellation ends it


if __name__ == "__main__":
    record = sys.argv[1]
    for line in sys.stdin.buffer:
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if isinstance(message, dict) and message.get("method") == "notifications/cancelled":
            with open(record, "a") as out:
                out.write(json.dumps(message.get("params")) + "\n")
        else:
            handle(line, {"echo": echo, "wait": wait})
