"""ConcurrencyLimiter (DS-2) under real concurrent anyio tasks."""

from __future__ import annotations

import anyio
import pytest

from bastion.limits import ConcurrencyLimiter, LimitExceeded, parse_limits

pytestmark = pytest.mark.anyio


def capped(n: int = 2, **extra: object) -> ConcurrencyLimiter:
    return ConcurrencyLimiter(
        parse_limits({"tools": [{"match": "workspace__exec*", "max_concurrent": n}], **extra})
    )


async def test_cap_holds_among_concurrent_tasks_and_refuses_at_once() -> None:
    limiter = capped(2)
    release = anyio.Event()
    peak, in_flight, refused, finished = 0, 0, 0, 0

    async def call(tool: str) -> None:
        nonlocal peak, in_flight, refused, finished
        try:
            async with limiter.slot("alice", tool):
                in_flight += 1
                peak = max(peak, in_flight)
                await release.wait()
                in_flight -= 1
                finished += 1
        except LimitExceeded as exc:
            assert (exc.scope, exc.retry_after) == ("concurrency", 1)
            refused += 1

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            for i in range(10):
                tg.start_soon(call, f"workspace__exec{i % 3}")
            # Refusals do not wait: all eight are refused before anyone is released.
            while refused < 8:
                await anyio.sleep(0)
            assert limiter.in_flight("alice", "workspace__exec") == 2
            release.set()
    assert (peak, finished, refused) == (2, 2, 8)
    assert limiter.tracked == 0  # nothing left behind


async def test_principals_are_capped_separately_and_uncapped_tools_pass() -> None:
    limiter = capped(1)
    async with limiter.slot("alice", "workspace__exec"), limiter.slot("bob", "workspace__exec"):
        with pytest.raises(LimitExceeded):
            async with limiter.slot("alice", "workspace__exec"):
                pass
        async with limiter.slot("alice", "workspace__read"):
            assert limiter.in_flight("alice", "workspace__read") == 0


async def test_slot_is_released_on_error_and_cancellation() -> None:
    limiter = capped(1)
    with pytest.raises(RuntimeError):
        async with limiter.slot("a", "workspace__exec"):
            raise RuntimeError("boom")
    with anyio.move_on_after(0.01):
        async with limiter.slot("a", "workspace__exec"):
            await anyio.sleep_forever()
    assert limiter.tracked == 0
    async with limiter.slot("a", "workspace__exec"):
        assert limiter.in_flight("a", "workspace__exec") == 1


async def test_state_is_bounded_by_max_tracked() -> None:
    limiter = capped(1, max_tracked=16)
    release = anyio.Event()
    refused = 0

    async def call(who: str) -> None:
        nonlocal refused
        try:
            async with limiter.slot(who, "workspace__exec"):
                await release.wait()
        except LimitExceeded:
            refused += 1

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            for i in range(40):
                tg.start_soon(call, f"p{i}")
            while refused < 24:
                await anyio.sleep(0)
            assert limiter.tracked == 16
            release.set()
    assert limiter.tracked == 0
