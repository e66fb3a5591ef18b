"""RateLimiter (DS-3): accuracy on a fake clock, Retry-After, isolation, bounded memory."""

from __future__ import annotations

import pytest

from bastion.errors import ConfigError
from bastion.limits import ALLOWED, LimitSettings, RateLimiter, RateSpec, parse_limits
from tests.clock import FakeClock


def limiter(clock: FakeClock, **limits: object) -> RateLimiter:
    return RateLimiter(parse_limits(limits), clock=clock)


def admitted(rl: RateLimiter, principal: str, n: int, tool: str | None = None) -> int:
    return sum(rl.check(principal, tool).allowed for _ in range(n))


def test_burst_then_rate_per_second() -> None:
    clock = FakeClock()
    rl = limiter(clock, per_principal={"rate": 5, "burst": 10})
    assert admitted(rl, "alice", 20) == 10
    clock.advance(1.0)
    assert admitted(rl, "alice", 20) == 5
    clock.advance(0.2)
    assert admitted(rl, "alice", 20) == 1


def test_rate_per_minute() -> None:
    clock = FakeClock()
    rl = limiter(clock, per_principal={"rate": 6, "per": "minute", "burst": 1})
    assert admitted(rl, "a", 5) == 1
    clock.advance(9.9)
    assert not rl.check("a").allowed
    clock.advance(0.1)
    assert rl.check("a") is ALLOWED


def test_retry_after_is_whole_seconds_rounded_up_and_at_least_one() -> None:
    clock = FakeClock()
    rl = limiter(clock, per_principal={"rate": 1, "per": "minute", "burst": 1})
    rl.check("a")
    refused = rl.check("a")
    assert (refused.allowed, refused.retry_after, refused.scope) == (False, 60, "principal")
    clock.advance(59.5)
    assert rl.check("a").retry_after == 1  # 0.5 s left: rounded up
    fast = limiter(clock, per_principal={"rate": 1000, "burst": 1})
    fast.check("a")
    assert fast.check("a").retry_after == 1  # 1 ms left: still at least 1


def test_default_burst_is_the_rate_per_second() -> None:
    assert RateSpec(rate=7.5).capacity == 8
    assert RateSpec(rate=30, per="minute").capacity == 1
    assert LimitSettings().per_principal == RateSpec(rate=50, burst=100)


def test_one_principal_exhausted_does_not_throttle_another() -> None:
    clock = FakeClock()
    rl = limiter(clock, per_principal={"rate": 1, "burst": 3})
    assert admitted(rl, "mallory", 1000) == 3
    assert admitted(rl, "alice", 3) == 3
    assert admitted(rl, "bob", 3) == 3


def test_global_bucket_is_shared_and_says_so() -> None:
    clock = FakeClock()
    rl = limiter(clock, per_principal={"rate": 100}, **{"global": {"rate": 1, "burst": 2}})
    assert admitted(rl, "a", 2) == 2
    refused = rl.check("b")
    assert (refused.allowed, refused.scope) == (False, "global")


def test_refusal_by_one_bucket_takes_from_none() -> None:
    clock = FakeClock()
    rl = limiter(
        clock,
        per_principal={"rate": 1, "burst": 5},
        tools=[{"match": "slow", "rate": 1, "burst": 1}],
    )
    assert rl.check("a", "slow").allowed
    for _ in range(10):
        assert rl.check("a", "slow").scope == "tool"
    # The ten refusals took no principal tokens: four of the five remain.
    assert admitted(rl, "a", 10) == 4


def test_ds3_principal_and_call_steps_charge_separate_buckets() -> None:
    """DS-3: the pipeline's two steps: ``check_principal`` spends only the principal's
    bucket (so a request the policy then denies still costs a token); ``check_call`` only
    the tool and global buckets, both or neither."""
    clock = FakeClock()
    rl = limiter(
        clock,
        per_principal={"rate": 1, "per": "minute", "burst": 3},
        tools=[{"match": "slow", "rate": 1, "per": "minute", "burst": 1}],
        **{"global": {"rate": 1, "per": "minute", "burst": 2}},
    )
    assert [rl.check_principal("a").allowed for _ in range(4)] == [True, True, True, False]
    assert rl.check_principal("a").scope == "principal"
    assert rl.check_principal("b").allowed  # another principal's bucket
    assert rl.check_call("a", "slow").allowed  # no principal token needed here
    refused = rl.check_call("a", "slow")
    assert (refused.allowed, refused.scope) == (False, "tool")
    assert rl.check_call("b", "slow").allowed  # took the global's second token
    refused = rl.check_call("c", None)
    assert (refused.allowed, refused.scope) == (False, "global")


def test_tool_override_counts_the_whole_group() -> None:
    clock = FakeClock()
    rl = limiter(clock, tools=[{"match": "workspace__exec*", "rate": 2, "per": "minute"}])
    assert rl.check("a", "workspace__exec").allowed
    refused = rl.check("a", "workspace__exec_bg")
    assert (refused.allowed, refused.scope, refused.retry_after) == (False, "tool", 30)
    assert rl.check("b", "workspace__exec").allowed  # per principal
    assert admitted(rl, "a", 5, "workspace__read") == 5  # other tools: no tool bucket


def test_per_tool_default_is_per_tool_name() -> None:
    clock = FakeClock()
    rl = limiter(clock, per_tool={"rate": 1, "burst": 1}, tools=[{"match": "x*", "rate": 9}])
    assert rl.check("a", "t1").allowed
    assert not rl.check("a", "t1").allowed
    assert rl.check("a", "t2").allowed
    assert admitted(rl, "a", 9, "x1") == 9  # the override replaces per_tool


def test_concurrency_only_entry_does_not_hide_a_later_rate() -> None:
    clock = FakeClock()
    rl = limiter(
        clock,
        tools=[{"match": "exec", "max_concurrent": 1}, {"match": "e*", "rate": 1, "burst": 1}],
    )
    assert admitted(rl, "a", 3, "exec") == 1


def test_memory_is_bounded_under_many_principals() -> None:
    clock = FakeClock()
    rl = limiter(clock, per_principal={"rate": 1, "burst": 1}, max_tracked=1000)
    for i in range(50_000):
        rl.check(f"p{i}", "tool")
        assert rl.tracked <= 1000
    assert rl.tracked == 1000


def test_evicting_refilled_buckets_is_lossless() -> None:
    clock = FakeClock()
    rl = limiter(clock, per_principal={"rate": 1, "burst": 1}, max_tracked=16)
    for i in range(100):
        rl.check(f"p{i}")
        clock.advance(1.0)  # each bucket refills before it can be evicted
    assert rl.lossy_evictions == 0


def test_an_active_principal_is_never_evicted_by_a_flood() -> None:
    clock = FakeClock()
    rl = limiter(clock, per_principal={"rate": 1, "burst": 2}, max_tracked=16)
    assert admitted(rl, "victim", 2) == 2
    for i in range(10_000):
        rl.check(f"flood{i}")
        assert not rl.check("victim").allowed  # its bucket stays recent, so stays empty
    assert rl.lossy_evictions > 0  # the flood's own buckets were lost, by design


def test_lossy_eviction_regains_at_most_one_burst() -> None:
    clock = FakeClock()
    rl = limiter(clock, per_principal={"rate": 1, "burst": 2}, max_tracked=16)
    assert admitted(rl, "a", 10) == 2
    for i in range(16):
        rl.check(f"other{i}")  # "a" is now the oldest and is evicted
    assert admitted(rl, "a", 10) == 2


def test_settings_errors_name_the_path() -> None:
    with pytest.raises(ConfigError, match=r"limits\.tools\[0\]\.match"):
        parse_limits({"tools": [{"match": "a/b", "rate": 1}]})
    with pytest.raises(ConfigError, match="unknown field `rates`"):
        parse_limits({"per_principal": {"rates": 1}})
    with pytest.raises(ConfigError, match="burst needs a rate"):
        parse_limits({"tools": [{"match": "a", "burst": 1, "max_concurrent": 1}]})
    assert parse_limits(None) == LimitSettings()
    assert parse_limits({"per_principal": None}).per_principal is None
