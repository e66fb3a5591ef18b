"""Telling the hub that the registry directory may have changed.

The watcher only wakes the caller; the caller rescans the directory, which is the truth.
Notifications come from the OS (inotify, FSEvents, ReadDirectoryChangesW, through
watchfiles) and, when that is unavailable or fails, from polling every ``poll_interval``.
A directory that does not exist yet reads as empty; the caller's rescans pick it up later.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Final, Literal

import anyio
import watchfiles

__all__ = ["POLL_INTERVAL", "WatchMode", "watch_directory"]

logger = logging.getLogger(__name__)

POLL_INTERVAL: Final = 0.25  # seconds between rescans when the OS cannot tell us
# watchfiles gathers events until none arrive for STEP ms (so a burst is one wake-up);
# its thread also wakes every STEP ms, so this trades latency against idle wake-ups
# (bench/hub_discovery.py: 5 ms listed a new instance in ~14 ms for ~0.9% of a core idle,
# 10 ms in ~23 ms for ~0.6%; the seed asks for < 50 ms).
STEP_MS: Final = 10
DEBOUNCE_MS: Final = 50  # at most this long gathering a continuous burst
RUST_TIMEOUT_MS: Final = 60_000  # the watch thread returns this often even with no events

WatchMode = Literal["auto", "notify", "poll"]


async def watch_directory(
    directory: Path,
    changed: Callable[[], None],
    *,
    mode: WatchMode = "auto",
    poll_interval: float = POLL_INTERVAL,
) -> None:
    """Call ``changed`` whenever ``directory`` may have changed, until cancelled."""
    if mode != "poll":
        try:
            await _notify(directory, changed)
        except Exception as exc:
            if mode == "notify":
                raise
            logger.warning(
                "cannot watch %s (%s); polling every %.2fs", directory, exc, poll_interval
            )
    await _poll(changed, poll_interval)


async def _poll(changed: Callable[[], None], interval: float) -> None:
    while True:
        await anyio.sleep(interval)
        changed()


async def _notify(directory: Path, changed: Callable[[], None]) -> None:
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory} does not exist")
    # The watch runs in a thread that only sees this event; set it before waiting for the
    # thread, or cancelling us would wait for the next event or RUST_TIMEOUT_MS.
    stop = anyio.Event()

    async def follow() -> None:
        async for _ in watchfiles.awatch(
            directory,
            watch_filter=None,
            debounce=DEBOUNCE_MS,
            step=STEP_MS,
            stop_event=stop,
            rust_timeout=RUST_TIMEOUT_MS,
            recursive=False,
            force_polling=False,
        ):
            changed()
        if not stop.is_set():
            raise RuntimeError("the watch ended by itself")

    async with anyio.create_task_group() as tg:
        tg.start_soon(follow)
        try:
            await anyio.sleep_forever()
        finally:
            stop.set()
