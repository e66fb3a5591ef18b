"""The failed-authentication throttle (AU-8): token bucket per address, LRU-bounded."""

from __future__ import annotations

from bastion.auth import FailureThrottle
from tests.auth.support import FakeClock


def test_au8_budget_refills_over_time() -> None:
    clock = FakeClock()
    throttle = FailureThrottle(per_minute=6, max_addresses=10, clock=clock)
    for _ in range(6):
        assert throttle.retry_after("a") == 0.0
        throttle.failed("a")
    assert throttle.retry_after("a") == 10.0  # one token per 10 s
    clock.advance(9.9)
    assert throttle.retry_after("a") > 0
    clock.advance(0.1)
    assert throttle.retry_after("a") == 0.0
    assert throttle.retry_after("b") == 0.0


def test_au8_table_is_bounded() -> None:
    throttle = FailureThrottle(per_minute=1, max_addresses=100, clock=FakeClock())
    for i in range(10_000):
        throttle.failed(f"10.0.{i // 256}.{i % 256}")
    assert len(throttle) == 100
    assert throttle.retry_after("10.0.39.15") > 0  # the most recent are kept
