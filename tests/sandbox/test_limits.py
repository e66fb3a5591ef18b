"""Profiles and limit resolution."""

from __future__ import annotations

import pytest

from bastion.sandbox import PROFILES, Profile, resolve_limits


def test_profiles_bound_what_protects_the_host() -> None:
    assert set(PROFILES) >= {"default", "strict", "build", "upstream", "high-security"}
    for profile in PROFILES.values():
        limits = profile.limits
        assert limits.memory_bytes is not None and limits.processes is not None
        # Only a long-running server goes without a CPU-time bound.
        assert (limits.cpu_seconds is None) is (profile.name == "upstream")
        assert limits.output_bytes > 0
        assert limits.wall_seconds <= 600
    strict, default = PROFILES["strict"].limits, PROFILES["default"].limits
    assert (strict.memory_bytes or 0) < (default.memory_bytes or 0)
    assert PROFILES["high-security"].backend == "gvisor"


def test_a_timeout_overrides_only_the_wall_clock() -> None:
    limits = resolve_limits("strict", 2.5)
    assert limits.wall_seconds == 2.5
    assert limits.memory_bytes == PROFILES["strict"].limits.memory_bytes
    assert resolve_limits(PROFILES["build"]) is PROFILES["build"].limits
    with pytest.raises(ValueError):
        resolve_limits("default", 0)
    with pytest.raises(KeyError):
        resolve_limits("nope")
    assert isinstance(PROFILES["default"], Profile)
