"""A stdio upstream that serves ``file:///{+path}`` the way a file server does: it decodes
the URI's path (``unquote``) and answers with the path it would open, without touching the
disk; ``reads`` lists every path asked for, so a test can tell whether a refused read ever
reached this process. It also serves ``note://hello``, a resource of a scheme that cannot
fetch. Every completion it is asked for is listed in ``reads`` too (``complete:<ref>``).
``python -m tests.pipeline.files``."""

from __future__ import annotations

import posixpath
import sys
from urllib.parse import unquote

from bastion._types import JSONObject
from bastion.protocol import types as t
from bastion.server.context import ToolContext
from bastion.server.registry import ServerApp
from tests.pipeline.support import run_on_stdio

reads: list[str] = []


async def _file(ctx: ToolContext, uri: str, variables: dict[str, str]) -> list[JSONObject]:
    path = "/" + unquote(variables["path"])
    reads.append(path)
    return [{"uri": uri, "mimeType": "text/plain", "text": f"opened {path}"}]


async def _note(ctx: ToolContext, uri: str, variables: dict[str, str]) -> list[JSONObject]:
    return [{"uri": uri, "mimeType": "text/plain", "text": "hello"}]


async def _tree(ctx: ToolContext, uri: str, variables: dict[str, str]) -> list[JSONObject]:
    path = posixpath.normpath(unquote(variables["path"]))
    reads.append(f"tree:{path}")
    return [{"uri": uri, "mimeType": "text/plain", "text": f"opened tree:{path}"}]


async def _open(ctx: ToolContext, args: JSONObject) -> JSONObject:
    path = posixpath.normpath(str(args.get("path", "")))
    reads.append(path)
    return {"content": [{"type": "text", "text": f"opened {path}"}]}


async def _complete(
    ctx: ToolContext, ref: JSONObject, argument: JSONObject, context: JSONObject
) -> JSONObject:
    reads.append(f"complete:{ref.get('uri', ref.get('name'))}")
    return {"values": ["readme.txt"], "total": 1, "hasMore": False}


async def _reads(ctx: ToolContext, args: JSONObject) -> JSONObject:
    return {"content": [{"type": "text", "text": "reads"}], "structuredContent": {"reads": reads}}


def build_app() -> ServerApp:
    app = ServerApp(name="files", version="1.0")
    app.add_template(t.ResourceTemplate(uriTemplate="file:///{+path}", name="files"), _file)
    app.add_resource(t.Resource(uri="note://hello", name="hello"), _note)
    app.add_template(t.ResourceTemplate(uriTemplate="tree://root/{+path}", name="tree"), _tree)
    app.completion = _complete
    app.add_tool(
        t.Tool(
            name="open",
            description="Open a file by path.",
            inputSchema={
                "type": "object",
                "properties": {"path": {"type": "string"}},
                "required": ["path"],
            },
        ),
        _open,
    )
    app.add_tool(
        t.Tool(
            name="reads",
            description="The paths read so far.",
            inputSchema={"type": "object", "properties": {}},
        ),
        _reads,
    )
    return app


def main() -> int:
    return run_on_stdio(build_app())


if __name__ == "__main__":
    sys.exit(main())
