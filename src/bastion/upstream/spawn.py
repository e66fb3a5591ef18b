"""Opening the transport to one upstream from its configuration: a child process on stdio
(no shell, allow-listed environment plus the server's own ``env``), the same inside the
sandbox when the server says ``sandbox:`` (only its own ``env``, a fresh writable
``/workspace`` per start, the host paths and domains it was granted), or Streamable HTTP
with the server's static headers (and the caller's ``ConnectChecks``, if any, asked of each
new connection). The client's own credentials are never part of either. A child's stderr
reaches our log with its configured credentials and any recognised secret masked (IN-5)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from bastion._types import NO_CHECKS, ConnectChecks
from bastion.transport.base import MessageStream
from bastion.transport.stdio import StdioChild, child_environment
from bastion.upstream.reasons import known_secrets, mask_secrets

if TYPE_CHECKING:
    from bastion.config.model import ServerConfig

__all__ = ["open_upstream"]


@asynccontextmanager
async def open_upstream(
    config: ServerConfig,
    environ: Mapping[str, str],
    *,
    name: str,
    checks: ConnectChecks = NO_CHECKS,
) -> AsyncIterator[MessageStream]:
    if config.url is not None:
        from bastion.transport.http_client import HttpClientStream  # noqa: PLC0415 - loads httpx only for HTTP upstreams

        async with HttpClientStream(
            config.url,
            headers=config.headers,
            checks=checks,
        ) as http:
            yield http
        return
    if config.command is None:
        raise ValueError(f"server {name} has neither command nor url")
    argv = [config.command, *config.args]
    if config.sandbox is not None:
        async with _sandboxed_child(config, argv, name=name) as child:
            yield child
        return
    env = child_environment(environ, config.env)
    clean = _stderr_filter(config)
    async with StdioChild(argv, env=env, cwd=config.cwd, name=name, stderr_filter=clean) as child:
        yield child


def _stderr_filter(config: ServerConfig) -> Callable[[str], str]:
    secrets = known_secrets(config)
    return lambda line: mask_secrets(line, secrets)


@asynccontextmanager
async def _sandboxed_child(
    config: ServerConfig, argv: list[str], *, name: str
) -> AsyncIterator[StdioChild]:
    from bastion.sandbox import SANDBOX_GID, SANDBOX_UID, Sandbox, sandboxed_upstream  # noqa: PLC0415 - only for sandboxed servers

    assert config.sandbox is not None
    # Its state lives as long as this start: under /tmp (the sandbox user must reach it).
    state = Path(tempfile.mkdtemp(prefix=f"bastion-upstream-{name}-", dir="/tmp"))
    try:
        state.chmod(0o755)
        if os.geteuid() == 0:
            os.chown(state, SANDBOX_UID, SANDBOX_GID)
        with Sandbox() as sandbox:
            async with (
                sandboxed_upstream(
                    sandbox,
                    argv,
                    workspace=state,
                    profile=config.sandbox.profile,
                    network=config.sandbox.network,
                    env=config.env,
                    extra_ro_paths=[Path(p) for p in config.sandbox.paths],
                ) as launch,
                StdioChild(
                    launch.argv,
                    env=launch.env,
                    name=name,
                    pass_fds=launch.pass_fds,
                    stderr_filter=_stderr_filter(config),
                ) as child,
            ):
                launch.close_fds()  # the child has its own copies
                yield child
    finally:
        shutil.rmtree(state, ignore_errors=True)
