"""DS-3 as a property: in any window of t seconds a bucket admits at most burst + rate * t."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.limits import RateLimiter, parse_limits
from tests.clock import FakeClock

EPSILON = 1e-9


def most_in_any_window(times: list[float], rate: float, burst: int) -> bool:
    for i, start in enumerate(times):
        for j in range(i, len(times)):
            if j - i + 1 > burst + rate * (times[j] - start) + EPSILON:
                return False
    return True


@settings(max_examples=200, deadline=None)
@given(
    rate=st.floats(min_value=0.01, max_value=100.0),
    burst=st.integers(min_value=1, max_value=20),
    steps=st.lists(st.floats(min_value=0.0, max_value=2.0), min_size=1, max_size=150),
)
def test_never_more_than_burst_plus_rate_times_t(
    rate: float, burst: int, steps: list[float]
) -> None:
    clock = FakeClock(0.0)
    rl = RateLimiter(parse_limits({"per_principal": {"rate": rate, "burst": burst}}), clock=clock)
    times: list[float] = []
    for step in steps:
        clock.advance(step)
        decision = rl.check("p")
        if decision.allowed:
            times.append(clock.now)
        else:
            assert decision.retry_after >= 1
    assert most_in_any_window(times, rate, burst)


@settings(max_examples=100, deadline=None)
@given(
    calls=st.lists(
        st.tuples(st.sampled_from(["a", "b", "c"]), st.floats(min_value=0, max_value=1.0)),
        max_size=120,
    )
)
def test_each_principal_is_limited_alone(calls: list[tuple[str, float]]) -> None:
    """Interleaving other principals changes nothing for one principal's admissions."""
    shared_clock, solo_clock = FakeClock(0.0), FakeClock(0.0)
    spec = parse_limits({"per_principal": {"rate": 2, "burst": 3}})
    shared, solo = RateLimiter(spec, clock=shared_clock), RateLimiter(spec, clock=solo_clock)
    for who, step in calls:
        shared_clock.advance(step)
        solo_clock.advance(step)
        together = shared.check(who)
        if who == "a":
            assert together == solo.check("a")


@settings(max_examples=100, deadline=None)
@given(
    retry=st.lists(st.floats(min_value=0.001, max_value=10.0), min_size=1, max_size=40),
    rate=st.floats(min_value=0.05, max_value=50.0),
)
def test_waiting_retry_after_is_enough(retry: list[float], rate: float) -> None:
    """A refused caller that waits ``retry_after`` seconds is admitted."""
    clock = FakeClock(0.0)
    rl = RateLimiter(parse_limits({"per_principal": {"rate": rate, "burst": 1}}), clock=clock)
    for step in retry:
        clock.advance(step)
        decision = rl.check("p")
        if not decision.allowed:
            clock.advance(decision.retry_after)
            assert rl.check("p").allowed


def test_ds3_waiting_exactly_retry_after_is_enough_despite_rounding() -> None:
    """Found by the property above (CI, 2026-11-21): at 1 token per 16 s the refill after
    exactly the advertised wait landed a hair under one token in floating point, so the
    caller was refused again (retry after 1 s). Kept as a fixed case."""
    clock = FakeClock(0.0)
    rl = RateLimiter(parse_limits({"per_principal": {"rate": 0.0625, "burst": 1}}), clock=clock)
    for step in (1.0, 1.6992690577527618, 1.0):
        clock.advance(step)
        decision = rl.check("p")
        if not decision.allowed:
            clock.advance(decision.retry_after)
            assert rl.check("p").allowed
