"""The stdio loop of the hand-written test upstreams here (``hider``, ``imager``, ``leaker``).

Newline-delimited JSON-RPC in and out, standard library only: each request is answered by
the script's ``answer(method, params)`` (None: -32601 Not found); notifications and lines
that are not JSON objects are ignored. Imported by the scripts' ``main`` only, as they are
run by path (their directory first on ``sys.path``) and imported as modules by tests.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

Answer = Callable[[Any, dict[str, Any]], "dict[str, Any] | None"]


def serve(answer: Answer) -> None:
    for line in sys.stdin:
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if not isinstance(message, dict) or message.get("id") is None:
            continue
        result = answer(message.get("method"), message.get("params") or {})
        reply: dict[str, Any] = {"jsonrpc": "2.0", "id": message["id"]}
        if result is None:
            reply["error"] = {"code": -32601, "message": "Not found"}
        else:
            reply["result"] = result
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()
