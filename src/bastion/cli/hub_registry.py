"""Announcing instances to the hub: ``bastion serve``'s own entry and ``bastion register``.

An entry exists only while its endpoint is listening and its process runs: ``serve`` writes
it once the socket listens and removes it when a stop signal arrives (before the graceful
shutdown, so the hub stops listing it first); ``register`` holds one for any loopback MCP
server until it is stopped, and writes it again if it disappears.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import anyio

from bastion.cli.signals import on_stop_signal
from bastion.errors import ConfigError
from bastion.hub.registry import (
    InstanceRecord,
    default_registry_dir,
    record_path,
    registered,
    write_record,
)

__all__ = ["registry_dir", "run_register", "serve_registration"]

logger = logging.getLogger(__name__)

KEEP_INTERVAL: Final = 5.0  # seconds between checks that `register`'s entry still exists


def registry_dir() -> Path:
    return default_registry_dir(os.environ)


def _url_host(host: str) -> str | None:
    """How a local client reaches a server bound to ``host``; None if not from loopback."""
    if host in ("0.0.0.0", "127.0.0.1", "localhost", ""):  # noqa: S104 (mapping, not binding)
        return "127.0.0.1"
    if host in ("::", "::1"):
        return "[::1]"
    return None


@contextlib.contextmanager
def serve_registration(
    host: str,
    port: int,
    path: str,
    versions: tuple[str, ...],
    *,
    credential: str | None = None,
    scheme: str = "http",
) -> Iterator[None]:
    """The registry entry of a listening ``bastion serve``, for the ``with`` block, with the
    credential a local client needs (the file is the user's alone, 0600).
    A failure to register is logged, never fatal: the gateway serves without the hub."""
    url_host = _url_host(host)
    if url_host is None:
        logger.warning("not registering with the hub: %s is not reachable on loopback", host)
        yield
        return
    cwd = Path.cwd()
    record = InstanceRecord.create(
        name=cwd.name or "bastion",
        url=f"{scheme}://{url_host}:{port}{path}",
        project=cwd,
        protocol_versions=versions,
        credential=credential,
    )
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(registered(registry_dir(), record))
        except (OSError, ConfigError) as exc:
            logger.warning("not registering with the hub: %s", exc)
        yield


def run_register(url: str, name: str, project: str | None) -> int:
    """``bastion register``: hold a registry entry for ``url`` until SIGTERM or SIGINT.

    Raises:
        ConfigError: ``url`` is not a loopback http(s) URL, or the registry is unusable.
    """
    record = InstanceRecord.create(
        name=name, url=url, project=Path(project or ".").resolve(), protocol_versions=()
    )
    directory = registry_dir()

    async def keep(path: Path) -> None:
        while True:
            await anyio.sleep(KEEP_INTERVAL)
            if not path.exists():  # the hub removes entries it found dead; we say it is back
                logger.info("registry entry %s was removed; writing it again", path.name)
                write_record(directory, record)

    async def main() -> None:
        with registered(directory, record) as path:
            print(f"registered {record.url} as {record.id}", flush=True)
            async with anyio.create_task_group() as tg:
                tg.start_soon(keep, path)
                await on_stop_signal(tg.cancel_scope.cancel)
                tg.cancel_scope.cancel()

    try:
        anyio.run(main)
    except OSError as exc:
        raise ConfigError(f"cannot write to the registry {directory}: {exc}") from exc
    finally:
        # Also on KeyboardInterrupt escaping the loop: the entry must not outlive us.
        with contextlib.suppress(OSError):
            os.unlink(record_path(directory, record.id))
    return 0
