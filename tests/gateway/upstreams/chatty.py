"""An upstream that logs on its own schedule, as many real servers do: ``say`` sends a log
line every 50 ms for ``seconds`` and only then answers, and it ignores cancellation;
``wait`` answers after ``seconds`` without a word. Both run in threads, so calls overlap."""

from __future__ import annotations

import threading
import time
from typing import Any

from _jsonrpc import echo, serve, text_result, write


def _later(rid: Any, work: Any) -> None:
    def run() -> None:
        result = work()
        write({"jsonrpc": "2.0", "id": rid, "result": result})

    threading.Thread(target=run, daemon=True).start()


def say(rid: Any, params: dict[str, Any]) -> None:
    args = params.get("arguments") or {}
    text, seconds = str(args.get("text")), float(args.get("seconds", 1))

    def talk() -> dict[str, Any]:
        for n in range(int(seconds / 0.05)):
            note = {"level": "info", "logger": "chatty", "data": f"{text} {n}"}
            write({"jsonrpc": "2.0", "method": "notifications/message", "params": note})
            time.sleep(0.05)
        return text_result(f"said {text}")

    _later(rid, talk)


def wait(rid: Any, params: dict[str, Any]) -> None:
    seconds = float((params.get("arguments") or {}).get("seconds", 1))

    def sleep() -> dict[str, Any]:
        time.sleep(seconds)
        return text_result("waited")

    _later(rid, sleep)


if __name__ == "__main__":
    serve({"echo": echo, "say": say, "wait": wait})
