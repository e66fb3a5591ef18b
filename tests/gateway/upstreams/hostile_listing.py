"""An upstream whose lists are hostile (UP-4, DS-4, TC-3). Usage:
hostile_listing.py MODE [N [PAGES]] [--storm]

``garbage``: its resources list is a string; its templates list holds a string, a number,
an object without a URI and a template no URI could match (``file:///{1}``); its prompts
list a null and a prompt named by a list; its tools list holds, beside ``echo``, a string
and a tool named by a number. ``huge``: it offers N tools and N resources a page (default
20,000) on PAGES pages (default 100), the tools with a 200-character description, ``echo``
and ``lists`` first, and one template and one prompt. With ``--storm`` it announces a
tools/list_changed every 10 ms once initialized. ``lists`` answers how many list requests
it got so far.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any

from _jsonrpc import echo, handle, text_result, write

MODE = sys.argv[1]
NUMBERS = [int(arg) for arg in sys.argv[2:] if arg.isdigit()]
PER_PAGE = NUMBERS[0] if NUMBERS else 20_000
PAGES = NUMBERS[1] if len(NUMBERS) > 1 else 100
STORM = "--storm" in sys.argv
BLURB = "x" * 200
ECHO = {"name": "echo", "inputSchema": {"type": "object"}}
LISTS = {"name": "lists", "inputSchema": {"type": "object"}}
CAPABILITIES = {"tools": {"listChanged": True}, "resources": {}, "prompts": {}}

GARBAGE: dict[str, Any] = {
    "tools/list": {"tools": ["abc", {"name": 5, "inputSchema": {}}, ECHO]},
    "resources/list": {"resources": "abc"},
    "resources/templates/list": {
        "resourceTemplates": [
            "abc",
            7,
            {"name": "no uri"},
            {"uriTemplate": "file:///{1}", "name": "t"},
        ]
    },
    "prompts/list": {"prompts": [None, {"name": ["p"]}]},
}
asked = {"lists": 0}


def huge_page(method: str, cursor: object) -> dict[str, Any]:
    page = int(cursor) if isinstance(cursor, str) and cursor.isdigit() else 0
    ids = range(page * PER_PAGE, (page + 1) * PER_PAGE)
    items: list[Any]
    if method == "tools/list":
        key = "tools"
        items = [{"name": f"t{i}", "description": BLURB, "inputSchema": {}} for i in ids]
        if page == 0:
            items[:2] = [ECHO, LISTS]
    elif method == "resources/list":
        key, items = "resources", [{"uri": f"file:///r{i}", "name": "r"} for i in ids]
    elif method == "resources/templates/list":
        return {"resourceTemplates": [{"uriTemplate": "file:///t/{x}", "name": "t"}]}
    else:
        return {"prompts": [{"name": "p", "description": BLURB}]}
    result: dict[str, Any] = {key: items}
    if page + 1 < PAGES:
        result["nextCursor"] = str(page + 1)
    return result


def count_lists(rid: Any, params: dict[str, Any]) -> dict[str, Any]:
    return text_result(str(asked["lists"]))


def storm() -> None:
    while True:
        time.sleep(0.01)
        write({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"})


def answer(request: dict[str, Any]) -> dict[str, Any] | None:
    """The result of a request this script answers itself, else None."""
    method = request.get("method")
    params = request.get("params") or {}
    if method == "initialize":
        version = params.get("protocolVersion", "2025-11-25")
        return {
            "protocolVersion": version,
            "capabilities": CAPABILITIES,
            "serverInfo": {"name": "hostile", "version": "0"},
        }
    if method not in GARBAGE:
        return None
    asked["lists"] += 1
    if MODE == "garbage":
        return GARBAGE[method]  # type: ignore[no-any-return]
    return huge_page(method, params.get("cursor"))


def main() -> None:
    for line in sys.stdin.buffer:
        if STORM and b'"notifications/initialized"' in line:
            threading.Thread(target=storm, daemon=True).start()
        try:
            request = json.loads(line)
        except ValueError:
            continue
        result = answer(request) if isinstance(request, dict) and "id" in request else None
        if result is None:
            handle(line, {"echo": echo, "lists": count_lists})
        else:
            write({"jsonrpc": "2.0", "id": request["id"], "result": result})


if __name__ == "__main__":
    main()
