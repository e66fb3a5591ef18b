"""``bastion workspace``: serve the workspace server over stdio or Streamable HTTP.

``--sandbox`` picks where ``run_command`` runs (bubblewrap, or ``none`` when said in
words, which the sandbox warns about at start); ``--policy`` names the command policy file.
``--trust-gateway-principal`` (stdio only: the pipe is the gateway's alone, while anyone
local could reach a port) takes each caller's principal from the request's ``_meta``.
``--disk-quota SIZE`` gives each new workspace its own filesystem of that size (root only).
SIGTERM stops the server as SIGINT and the end of stdin do: the workspaces' filesystems are
unmounted on the way out. A stop signal during start takes effect once the images are
mounted; a second one does not cut the unmounting short.
"""

from __future__ import annotations

import sys
from pathlib import Path

import anyio

from bastion.cli.signals import sigterm_as_sigint, stop_signals_deferred, stop_signals_ignored
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
    with sigterm_as_sigint():
        return _run(
            root=root,
            stdio=stdio,
            host=host,
            port=port,
            sandbox=sandbox,
            policy=policy,
            trust_principal=trust_principal,
            quota=quota,
        )


def _run(
    *,
    root: str,
    stdio: bool,
    host: str,
    port: int | None,
    sandbox: str,
    policy: str | None,
    trust_principal: bool,
    quota: int | None,
) -> int:
    from bastion.sandbox import Sandbox, SandboxError
    from bastion.workspace.policy import DEFAULT_POLICY, load_policy

    rules = DEFAULT_POLICY if policy is None else load_policy(Path(policy))
    try:
        runtime = Sandbox("none" if sandbox == "none" else "bubblewrap")
    except SandboxError as exc:
        raise ConfigError(f"--sandbox {sandbox}: {exc.detail or exc.message}") from exc
    try:
        with stop_signals_deferred() as stop_signals:  # every mount started is known to close
            server = WorkspaceServer(
                Path(root),
                sandbox=runtime,
                policy=rules,
                trust_principal=trust_principal,
                disk_quota=quota,
            )
    except BaseException as exc:
        runtime.close()
        if isinstance(exc, OSError):
            raise ConfigError(f"--root {root}: {exc.strerror}") from exc
        if isinstance(exc, SandboxError):
            raise ConfigError(f"--disk-quota: {exc.detail or exc.message}") from exc
        raise
    try:
        if stop_signals:
            raise KeyboardInterrupt  # stopped while starting
        if stdio:
            anyio.run(_serve_stdio, server)
            return 0
        if port is None:
            print("bastion workspace: --port is required without --stdio", file=sys.stderr)
            return 2
        _serve_http(server, host, port)
        return 0
    finally:
        with stop_signals_ignored():
            server.close()
            runtime.close()


async def _serve_stdio(server: WorkspaceServer) -> None:
    from bastion.cli.signals import on_stop_signal
    from bastion.transport.base import serve_stream
    from bastion.transport.stdio import StdioServerStream

    async with anyio.create_task_group() as tg:
        tg.start_soon(on_stop_signal, tg.cancel_scope.cancel)
        stream = await StdioServerStream.open()
        await serve_stream(stream, server.connection())
        tg.cancel_scope.cancel()


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
