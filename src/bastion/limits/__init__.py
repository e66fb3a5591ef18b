"""Rate limits and concurrency caps (DS-2, DS-3): bounded, per principal, clock injected.

``RateLimiter.check`` admits or refuses one call with a ``retry_after``; ``ConcurrencyLimiter``
caps expensive tools' calls in flight; ``LimitSettings`` is the ``limits:`` config section.
"""

from __future__ import annotations

from bastion.limits.bucket import TokenBucket
from bastion.limits.concurrency import (
    CONCURRENCY_RETRY_AFTER,
    ConcurrencyLimiter,
    LimitExceeded,
    Slot,
)
from bastion.limits.rate import ALLOWED, LimitScope, RateDecision, RateLimiter
from bastion.limits.settings import (
    DEFAULT_MAX_TRACKED,
    LimitSettings,
    Per,
    RateSpec,
    ToolLimit,
    parse_limits,
)

__all__ = [  # noqa: RUF022 - plain sorted order, as tests/test_exported_members.py checks
    "ALLOWED",
    "CONCURRENCY_RETRY_AFTER",
    "ConcurrencyLimiter",
    "DEFAULT_MAX_TRACKED",
    "LimitExceeded",
    "LimitScope",
    "LimitSettings",
    "Per",
    "RateDecision",
    "RateLimiter",
    "RateSpec",
    "Slot",
    "TokenBucket",
    "ToolLimit",
    "parse_limits",
]
