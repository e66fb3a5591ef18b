"""``bastion workspace``: serve the workspace server over stdio or Streamable HTTP.

``--sandbox`` picks where ``run_command`` runs (bubblewrap, or ``none`` when said in
words, which the sandbox warns about at start); ``--policy`` names the command policy file.
``--trust-gateway-principal`` (stdio only: the pipe is the gateway's alone, while anyone
local could reach a port) takes each caller's principal from the request's ``_meta``.
``--disk-quota SIZE`` gives each new workspace its own filesystem of that size (root only).
"""

from __future__ import annotations

import sys
from pathlib import Path

import anyio

from bastion.errors import ConfigError
from bastion.workspace import WorkspaceServer

__all__ = ["run_workspace"]


def run_workspace(
    *,
    root: str,
    stdio: bool,
    host: str,
    port: int | None,
    sandbox: str = "bubblewrap",
    policy: str | None = None,
    trust_principal: bool = False,
    disk_quota: str = "none",
) -> int:
    """Raises ConfigError when the root, the policy, the sandbox or the quota cannot be used."""
    from bastion.workspace.disk import parse_size, quota_unavailable

    if trust_principal and not stdio:
        raise ConfigError("--trust-gateway-principal needs --stdio (a port has no gateway)")
    try:
        quota = parse_size(disk_quota)
    except ValueError as exc:
        raise ConfigError(f"--disk-quota: {exc}") from exc
    unavailable = quota_unavailable() if quota is not None else None
    if unavailable is not None:
        raise ConfigError(f"--disk-quota: {unavailable}")
    from bastion.sandbox import Sandbox, SandboxError
    from bastion.workspace.policy import DEFAULT_POLICY, load_policy

    rules = DEFAULT_POLICY if policy is None else load_policy(Path(policy))
    try:
        runtime = Sandbox("none" if sandbox == "none" else "bubblewrap")
    except SandboxError as exc:
        raise ConfigError(f"--sandbox {sandbox}: {exc.detail or exc.message}") from exc
    try:
        server = WorkspaceServer(
            Path(root),
            sandbox=runtime,
            policy=rules,
            trust_principal=trust_principal,
            disk_quota=quota,
        )
    except OSError as exc:
        runtime.close()
        raise ConfigError(f"--root {root}: {exc.strerror}") from exc
    except SandboxError as exc:
        runtime.close()
        raise ConfigError(f"--disk-quota: {exc.detail or exc.message}") from exc
    try:
        if stdio:
            anyio.run(_serve_stdio, server)
            return 0
        if port is None:
            print("bastion workspace: --port is required without --stdio", file=sys.stderr)
            return 2
        _serve_http(server, host, port)
        return 0
    finally:
        server.close()
        runtime.close()


async def _serve_stdio(server: WorkspaceServer) -> None:
    from bastion.transport.base import serve_stream
    from bastion.transport.stdio import StdioServerStream

    stream = await StdioServerStream.open()
    await serve_stream(stream, server.connection())


def _serve_http(server: WorkspaceServer, host: str, port: int) -> None:
    # The HTTP stack loads only here, so `--stdio` starts without it.
    from bastion.cli.signals import on_stop_signal
    from bastion.transport.http_run import serve_http
    from bastion.transport.http_server import HttpSettings, StreamableHttpApp

    http_app = StreamableHttpApp(
        lambda _who, _sid: server.connection(), HttpSettings(host=host, port=port)
    )

    async def run() -> None:
        stop = anyio.Event()
        async with anyio.create_task_group() as tg:
            tg.start_soon(on_stop_signal, stop.set)
            await serve_http(http_app, stop=stop)
            tg.cancel_scope.cancel()

    anyio.run(run)
