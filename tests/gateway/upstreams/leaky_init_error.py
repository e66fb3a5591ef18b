"""An upstream that refuses to start: it answers ``initialize`` (and ``server/discover``)
with an error whose message quotes the API token it was given in its environment, a GitHub
token and an internal URL (UP-4: ``/readyz`` shows an upstream's last error publicly)."""

from __future__ import annotations

import json
import os
import sys

if __name__ == "__main__":
    token = os.environ.get("API_TOKEN", "")
    message = f"cannot start with key {token}; ghp_{'a1B2' * 9} at http://10.0.0.5:8080/admin"
    for line in sys.stdin:
        request = json.loads(line)
        if "id" in request:
            error = {"code": -32000, "message": message}
            answer = {"jsonrpc": "2.0", "id": request["id"], "error": error}
            sys.stdout.write(json.dumps(answer) + "\n")
            sys.stdout.flush()
