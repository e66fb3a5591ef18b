"""A minimal official-SDK (mcp 2.x) MCPServer over stdio with one tool: the startup baseline."""

from __future__ import annotations

from mcp.server.mcpserver import MCPServer

server: MCPServer = MCPServer("sdk-bench", version="1")


@server.tool()
def echo(text: str) -> str:
    """Return the text unchanged."""
    return text


if __name__ == "__main__":
    server.run("stdio")
