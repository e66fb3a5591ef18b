"""An upstream whose ``crash`` tool kills the process mid-answer (half a line written)."""

from __future__ import annotations

import os
from typing import Any

from _jsonrpc import echo, serve, write_raw


def crash(rid: Any, params: dict[str, Any]) -> None:
    write_raw(b'{"jsonrpc": "2.0", "id": ')  # the answer is cut off by the crash
    os._exit(1)


if __name__ == "__main__":
    serve({"echo": echo, "crash": crash})
