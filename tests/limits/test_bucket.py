from __future__ import annotations

import pytest

from bastion.limits import TokenBucket


def test_starts_full_and_refills_at_rate() -> None:
    bucket = TokenBucket(rate=2.0, burst=3, now=0.0)
    assert [bucket.take(0.0) for _ in range(4)] == [0.0, 0.0, 0.0, 0.5]
    assert bucket.take(0.25) == pytest.approx(0.25)  # half a token accrued, half to go
    assert bucket.take(0.5) == 0.0
    assert bucket.take(0.5) > 0


def test_never_holds_more_than_burst() -> None:
    bucket = TokenBucket(rate=10.0, burst=2, now=0.0)
    assert bucket.refill(1_000_000.0) == 2
    assert bucket.is_full(1_000_000.0)


def test_clock_stepping_back_mints_nothing() -> None:
    bucket = TokenBucket(rate=1.0, burst=1, now=10.0)
    assert bucket.take(10.0) == 0.0
    assert bucket.take(5.0) > 0  # earlier than the stamp: no refill
    assert bucket.take(10.5) == pytest.approx(0.5)


def test_refused_take_takes_nothing() -> None:
    bucket = TokenBucket(rate=1.0, burst=1, now=0.0)
    bucket.take(0.0)
    assert bucket.take(0.5) == pytest.approx(0.5)
    assert bucket.tokens == pytest.approx(0.5)


@pytest.mark.parametrize(("rate", "burst"), [(0.0, 1), (-1.0, 1), (1.0, 0.5)])
def test_rejects_nonsense(rate: float, burst: float) -> None:
    with pytest.raises(ValueError, match="rate > 0"):
        TokenBucket(rate=rate, burst=burst, now=0.0)
