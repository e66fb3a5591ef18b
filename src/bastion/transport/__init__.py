"""Transports: turn pipes and sockets into protocol messages, as server and client faces.

``stdio`` (our stdin/stdout, or a spawned child), Streamable HTTP (``http_server`` app run by
``http_run``; ``http_client`` towards an upstream) and an in-memory pair for tests. The HTTP
and stdio modules are imported on demand so a stdio process never loads the HTTP stack.
"""

from __future__ import annotations

from bastion.transport.base import McpConnection, MessageStream, serve_stream
from bastion.transport.memory import MemoryStream, create_memory_pair

__all__ = ["McpConnection", "MemoryStream", "MessageStream", "create_memory_pair", "serve_stream"]
