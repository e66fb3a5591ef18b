"""A small MCP server built on the official Python SDK (``mcp`` 2.x ``MCPServer``): the peer
our client face is tested against.

Run ``python sdk_server.py stdio`` or ``python sdk_server.py http PORT`` (Streamable HTTP
at ``http://127.0.0.1:PORT/mcp``). It offers ``add(a, b)``, ``ask_name`` (elicits a form)
and ``ask_llm(question)`` (samples the client); both use the SDK's ``Resolve`` markers, so
they work in either era: a server-to-client request on 2025-11-25 and an input-required
result on 2026-07-28. Also the resource ``sdk://greeting`` and the prompt ``review(code)``.
"""

from __future__ import annotations

import sys
from typing import Annotated

import mcp_types as types
from mcp.server.mcpserver import Elicit, MCPServer, Resolve, Sample
from pydantic import BaseModel

GREETING = "Hello from the official SDK server."

server = MCPServer(
    "sdk-peer", version="1.0.0", instructions="An official-SDK test peer.", log_level="WARNING"
)


class Name(BaseModel):
    name: str


def ask_for_name() -> Elicit[Name]:
    return Elicit("What is your name?", Name)


def ask_capital(question: str) -> Sample:
    return Sample(
        [types.SamplingMessage(role="user", content=types.TextContent(type="text", text=question))],
        max_tokens=50,
    )


@server.tool()
def add(a: int, b: int) -> int:
    """Adds two integers."""
    return a + b


@server.tool()
def ask_name(who: Annotated[Name, Resolve(ask_for_name)]) -> str:
    """Asks the user's name, then greets them."""
    return f"Hello, {who.name}!"


@server.tool()
def ask_llm(
    question: str, answer: Annotated[types.CreateMessageResult, Resolve(ask_capital)]
) -> str:
    """Asks the client's LLM a question."""
    content = answer.content
    text = content.text if isinstance(content, types.TextContent) else "(no text)"
    return f"The model said: {text}"


@server.resource("sdk://greeting", mime_type="text/plain")
def greeting() -> str:
    return GREETING


@server.prompt()
def review(code: str) -> str:
    """Asks for a code review."""
    return f"Please review this code: {code}"


def main(argv: list[str]) -> None:
    if argv[:1] == ["stdio"]:
        server.run("stdio")
    elif len(argv) == 2 and argv[0] == "http":
        server.run("streamable-http", host="127.0.0.1", port=int(argv[1]))
    else:
        raise SystemExit("usage: sdk_server.py stdio | http PORT")


if __name__ == "__main__":
    main(sys.argv[1:])
