"""Opening the transport to one upstream from its configuration: a child process on stdio
(no shell, allow-listed environment plus the server's own ``env``) or Streamable HTTP with
the server's static headers. The client's own credentials are never part of either."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from bastion.transport.base import MessageStream
from bastion.transport.stdio import StdioChild, child_environment

if TYPE_CHECKING:
    from bastion.config.model import ServerConfig

__all__ = ["open_upstream"]


@asynccontextmanager
async def open_upstream(
    config: ServerConfig, environ: Mapping[str, str], *, name: str
) -> AsyncIterator[MessageStream]:
    if config.url is not None:
        from bastion.transport.http_client import HttpClientStream  # noqa: PLC0415 - loads httpx only for HTTP upstreams

        async with HttpClientStream(config.url, headers=config.headers) as http:
            yield http
        return
    if config.command is None:
        raise ValueError(f"server {name} has neither command nor url")
    argv = [config.command, *config.args]
    env = child_environment(environ, config.env)
    async with StdioChild(argv, env=env, cwd=config.cwd, name=name) as child:
        yield child
