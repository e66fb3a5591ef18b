"""``LogCounter``: a repeated event is reported at its first occurrence, then at most once
per interval, with the count of every occurrence since the last report (DS-4)."""

from __future__ import annotations

from bastion._log_counts import LogCounter


def test_reports_at_most_once_per_interval_with_the_count_since_the_last_DS4() -> None:
    now = [100.0]
    counter = LogCounter(10.0, clock=lambda: now[0])
    assert counter.count() == 1  # the first is reported at once
    assert [counter.count() for _ in range(4)] == [None] * 4
    now[0] = 109.9
    assert counter.count() is None
    now[0] = 110.0
    assert counter.count() == 6  # the five held back, and this one
    now[0] = 125.0
    assert counter.count() == 1
