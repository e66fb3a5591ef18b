"""An upstream that, as many command-line tools do, repeats its command line when something
fails: its ``search`` tool answers an error quoting it, and with ``--refuse-start`` it
answers ``initialize`` with such an error (UP-4: a credential given as ``${VAR}`` in the
server's ``args`` must come back masked in results, ``/readyz`` and the log)."""

from __future__ import annotations

import json
import sys
from typing import Any

from _jsonrpc import echo, serve, text_result

INVOKED = "invoked as: search-server " + " ".join(sys.argv[1:])


def search(rid: Any, params: dict[str, Any]) -> dict[str, Any]:
    return {**text_result(f"search failed; {INVOKED}"), "isError": True}


if __name__ == "__main__":
    if "--refuse-start" in sys.argv:
        sys.stderr.write(f"starting; {INVOKED}\n")
        sys.stderr.flush()
        for line in sys.stdin:
            request = json.loads(line)
            if "id" in request:
                error = {"code": -32000, "message": f"bad arguments; {INVOKED}"}
                sys.stdout.write(
                    json.dumps({"jsonrpc": "2.0", "id": request["id"], "error": error})
                )
                sys.stdout.write("\n")
                sys.stdout.flush()
    else:
        serve({"echo": echo, "search": search})
