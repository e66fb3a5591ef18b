"""Graceful stop on SIGTERM and SIGINT: the caller decides what stopping means (let uvicorn
finish its shutdown, then cancel the task group so every upstream child is closed through
its escalation) before the process exits.

Outside the event loop, for a command that holds something the system keeps after it
(``bastion workspace --disk-quota``'s mounts): ``sigterm_as_sigint`` makes SIGTERM raise
KeyboardInterrupt as SIGINT does, so the ``finally`` that releases it runs;
``stop_signals_deferred`` holds a stop signal back while it is acquired (a ``mount`` cut
short leaves its result unknown); ``stop_signals_ignored`` lets the release finish.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable, Iterator
from types import FrameType

import anyio

__all__ = ["on_stop_signal", "sigterm_as_sigint", "stop_signals_deferred", "stop_signals_ignored"]

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


async def on_stop_signal(stop: Callable[[], None]) -> None:
    """Call ``stop`` at the first SIGTERM or SIGINT."""
    with anyio.open_signal_receiver(*STOP_SIGNALS) as signals:
        async for _ in signals:
            stop()
            return


@contextlib.contextmanager
def _handled(handler: Callable[[int, FrameType | None], object] | int) -> Iterator[None]:
    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, before in previous.items():
            signal.signal(sig, before)


@contextlib.contextmanager
def sigterm_as_sigint() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt (an event loop's own handlers take over inside it)."""
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def stop_signals_deferred() -> Iterator[list[int]]:
    """Stop signals are noted in the list yielded, not acted on: the caller checks it after."""
    caught: list[int] = []
    with _handled(lambda signum, _frame: caught.append(signum)):
        yield caught


@contextlib.contextmanager
def stop_signals_ignored() -> Iterator[None]:
    """Stopping already: a second stop signal does not cut the release short."""
    with _handled(signal.SIG_IGN):
        yield
