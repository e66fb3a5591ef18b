"""An upstream whose ``hang`` tool never answers (and ignores cancellation); ``echo`` works.
With ``--linger`` it also ignores the end of its stdin and keeps running until signalled."""

from __future__ import annotations

import sys
import time
from typing import Any

from _jsonrpc import echo, serve


def hang(rid: Any, params: dict[str, Any]) -> None:
    return None  # no answer, ever; the process keeps serving other requests


if __name__ == "__main__":
    serve({"echo": echo, "hang": hang})
    while "--linger" in sys.argv:
        time.sleep(60)
