"""A stdio upstream with a long list: ``NOTES`` notes (``note://secret-<i>``, but for two
public ones at positions 7 and 240, as ``note_uris`` lists them), the template
``note://{id}``, and completion values for it that name public and secret notes alike
(``COMPLETIONS``); every completion it is asked is noted in ``asked``.
``python -m tests.pipeline.many``."""

from __future__ import annotations

import sys
from typing import Final

from bastion._types import JSONObject
from bastion.protocol import types as t
from bastion.server.context import ToolContext
from bastion.server.registry import ServerApp
from tests.pipeline.support import run_on_stdio

NOTES: Final = 250
PUBLIC: Final = {7: "public-a", 240: "public-b"}
TEMPLATE: Final = "note://{id}"
COMPLETIONS: Final = ["public-a", "secret-3", "public-b", "secret-9"]


def note_uris() -> list[str]:
    """Every note's URI, in list order."""
    return [f"note://{PUBLIC.get(i, f'secret-{i}')}" for i in range(NOTES)]


def build_app(asked: list[JSONObject] | None = None) -> ServerApp:
    app = ServerApp(name="many", version="1.0")

    async def read(ctx: ToolContext, uri: str, variables: dict[str, str]) -> list[JSONObject]:
        return [{"uri": uri, "mimeType": "text/plain", "text": uri}]

    for uri in note_uris():
        app.add_resource(t.Resource(uri=uri, name=uri[len("note://") :]), read)
    app.add_template(t.ResourceTemplate(uriTemplate=TEMPLATE, name="note"), read)

    async def complete(
        ctx: ToolContext, ref: JSONObject, argument: JSONObject, context: JSONObject
    ) -> JSONObject:
        if asked is not None:
            asked.append({"ref": ref, "argument": argument})
        return {"values": list(COMPLETIONS), "total": len(COMPLETIONS), "hasMore": False}

    app.completion = complete
    return app


def main() -> int:
    return run_on_stdio(build_app())


if __name__ == "__main__":
    sys.exit(main())
