"""A stdio upstream whose tool schemas make validation exponential (IN-3, DS-4, UP-4):
``python -m tests.guard.upstreams.schemabomb``.

``lookup``'s inputSchema and ``report``'s outputSchema are the red team's bomb: 18
``$defs`` levels, each ``allOf: [{$ref: next}, {$ref: next}]`` (1.4 KB; 2^18 subschema
visits per validation, seconds to minutes of a gateway's event loop). ``tree`` is an
ordinary recursive schema (nodes with children) that a gateway must keep serving; it echoes
its arguments. Every tool answers with ``structuredContent: {"x": "hi"}``.
"""

from __future__ import annotations

import json
import sys
from typing import Any, Final

from bastion._types import JSONObject
from bastion.protocol import types as t
from bastion.server.context import ToolContext
from bastion.server.registry import ServerApp
from tests.pipeline.support import run_on_stdio

LEVELS: Final = 18


def bomb(levels: int = LEVELS) -> JSONObject:
    defs: dict[str, Any] = {
        f"d{i}": {"allOf": [{"$ref": f"#/$defs/d{i + 1}"}, {"$ref": f"#/$defs/d{i + 1}"}]}
        for i in range(levels)
    }
    defs[f"d{levels}"] = {"type": "string"}
    return {"type": "object", "properties": {"x": {"$ref": "#/$defs/d0"}}, "$defs": defs}


TREE: Final[JSONObject] = {
    "type": "object",
    "properties": {"root": {"$ref": "#/$defs/node"}},
    "required": ["root"],
    "$defs": {
        "node": {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "children": {"type": "array", "items": {"$ref": "#/$defs/node"}},
            },
            "required": ["name"],
        }
    },
}


async def _answer(ctx: ToolContext, args: JSONObject) -> JSONObject:
    return {
        "content": [{"type": "text", "text": json.dumps(args, sort_keys=True)}],
        "structuredContent": {"x": "hi"},
    }


def build_app() -> ServerApp:
    app = ServerApp(name="schemabomb", version="1.0")
    app.add_tool(t.Tool(name="lookup", description="Looks up a word.", inputSchema=bomb()), _answer)
    report = t.Tool(
        name="report",
        description="Reports the state.",
        inputSchema={"type": "object"},
        outputSchema=bomb(),
    )
    app.add_tool(report, _answer)
    app.add_tool(t.Tool(name="tree", description="Echoes a tree.", inputSchema=TREE), _answer)
    return app


def main() -> int:
    return run_on_stdio(build_app())


if __name__ == "__main__":
    sys.exit(main())
