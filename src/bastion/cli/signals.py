"""Graceful stop on SIGTERM and SIGINT: cancel the serving task group, so every upstream
child is closed through its escalation (stdin, SIGTERM, SIGKILL) before the process exits."""

from __future__ import annotations

import signal

import anyio

__all__ = ["cancel_on_signals"]


async def cancel_on_signals(scope: anyio.CancelScope) -> None:
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for _ in signals:
            scope.cancel()
            return
