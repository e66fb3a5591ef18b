"""An upstream whose answers to two tools cannot be read: ``deep`` answers with a result
nested past the gateway's depth limit, ``huge`` with a line over the 4 MiB cap; neither
ever sends another answer. ``echo`` works."""

from __future__ import annotations

import json
from typing import Any

from _jsonrpc import echo, serve, write_raw

OVERLONG = 4 * 1024 * 1024 + 4096  # bytes; the gateway's line cap is 4 MiB


def deep(rid: Any, params: dict[str, Any]) -> None:
    nested = '{"a":' * 200 + '"x"' + "}" * 200
    result = '{"content":[{"type":"text","text":"x"}],"structuredContent":' + nested + "}"
    write_raw(f'{{"jsonrpc":"2.0","id":{json.dumps(rid)},"result":{result}}}\n'.encode())


def huge(rid: Any, params: dict[str, Any]) -> None:
    head = f'{{"jsonrpc":"2.0","id":{json.dumps(rid)},"result":{{"content":['.encode()
    block = b'{"type":"text","text":"AB"},'
    write_raw(head + block * (OVERLONG // len(block)) + b'{"type":"text","text":"end"}]}}\n')


if __name__ == "__main__":
    serve({"echo": echo, "deep": deep, "huge": huge})
