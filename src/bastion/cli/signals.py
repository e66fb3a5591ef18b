"""Graceful stop on SIGTERM and SIGINT: the caller decides what stopping means (let uvicorn
finish its shutdown, then cancel the task group so every upstream child is closed through
its escalation) before the process exits."""

from __future__ import annotations

import signal
from collections.abc import Callable

import anyio

__all__ = ["on_stop_signal"]


async def on_stop_signal(stop: Callable[[], None]) -> None:
    """Call ``stop`` at the first SIGTERM or SIGINT."""
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for _ in signals:
            stop()
            return
