"""``RateLimiter`` (DS-3): token buckets per principal, per (principal, tool) and overall.

``check(principal, tool)`` reads the clock once, refills every bucket that applies and
admits the call only if each has a token; then it takes one from each, so a refused call
costs nothing anywhere. The pipeline charges the same buckets in two steps:
``check_principal`` before the policy decides (so denied requests count too) and
``check_call`` (tool and global buckets) after it; a call the second step refuses has spent
its principal token, as a denied one has. Buckets are keyed by principal id, so one
principal's exhaustion never throttles another; only the optional ``global`` bucket is
shared, by design.

Memory is bounded: at most ``max_tracked`` buckets, least recently used evicted first.
Forgetting a bucket that has refilled to its burst loses nothing (a new bucket starts full,
which is the same state). The LRU bucket is the one idle longest, so eviction is lossy only
when more than ``max_tracked`` keys were used within one refill time (burst / rate seconds);
then the evicted key may regain at most one burst, once per eviction. An active principal's
own calls keep its bucket recent, so its own traffic cannot evict it. We accept this bounded
excess (counted in ``lossy_evictions``) rather than refuse new keys when the table is full,
which would let a flood of fresh principals throttle everyone else.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Final, Literal

import msgspec

from bastion.limits._match import FirstMatch
from bastion.limits.bucket import TokenBucket
from bastion.limits.settings import LimitSettings, RateSpec

if TYPE_CHECKING:
    from bastion._types import Clock

__all__ = ["ALLOWED", "LimitScope", "RateDecision", "RateLimiter"]

LimitScope = Literal["principal", "tool", "global", "concurrency"]

# A principal's bucket is keyed by its id; a tool bucket by (id, tool name) for ``per_tool``
# or (id, index of the ``tools`` entry) for a group override.
_Key = str | tuple[str, str | int]


class RateDecision(msgspec.Struct, frozen=True, kw_only=True):
    """``allowed``, or refused by ``scope`` with ``retry_after`` whole seconds (>= 1)."""

    allowed: bool
    retry_after: int = 0
    scope: LimitScope | None = None


ALLOWED: Final = RateDecision(allowed=True)
_SCOPES: Final[tuple[LimitScope, ...]] = ("principal", "tool", "global")


def _refused(delay: float, scope: LimitScope) -> RateDecision:
    return RateDecision(allowed=False, retry_after=max(1, math.ceil(delay)), scope=scope)


class RateLimiter:
    """Rate limits from ``LimitSettings``; ``check`` is synchronous and does no I/O."""

    def __init__(self, settings: LimitSettings | None = None, *, clock: Clock = time.monotonic):
        settings = settings or LimitSettings()
        self._clock = clock
        self._max = settings.max_tracked
        self._per_principal = settings.per_principal
        self._per_tool = settings.per_tool
        now = clock()
        spec = settings.global_
        self._global = None if spec is None else TokenBucket(spec.per_second, spec.capacity, now)
        self._overrides = FirstMatch(
            [(t.match, t.rate_spec) for t in settings.tools if t.rate_spec is not None]
        )
        self._buckets: OrderedDict[_Key, TokenBucket] = OrderedDict()
        self.lossy_evictions = 0
        """Evictions of a bucket that had not refilled yet (see the module docstring)."""

    @property
    def tracked(self) -> int:
        """Buckets held now (never more than ``max_tracked``)."""
        return len(self._buckets)

    def check(self, principal: str, tool: str | None = None) -> RateDecision:
        """Admit one call by ``principal`` (its ``Principal.id``), to ``tool`` if it is a
        tool call (its canonical name), taking a token from each bucket that applies.

        Refused: ``RateDecision(allowed=False, retry_after=N, scope=...)``, where ``scope``
        is the most specific bucket that refused (principal, then tool, then global) and
        ``N`` the whole seconds, rounded up and at least 1, until every bucket has a token.
        """
        now = self._clock()
        first = self._principal_bucket(principal, now)
        second = self._tool_bucket(principal, tool, now)
        return self._take(now, first, second, self._global)

    def check_principal(self, principal: str) -> RateDecision:
        """``check``'s per-principal bucket alone: the pipeline charges it before the policy
        decides, so denied requests are counted too (``check_call`` charges the rest)."""
        now = self._clock()
        bucket = self._principal_bucket(principal, now)
        if bucket is None:
            return ALLOWED
        delay = bucket.take(now)
        return ALLOWED if delay == 0.0 else _refused(delay, "principal")

    def check_call(self, principal: str, tool: str | None = None) -> RateDecision:
        """``check`` without the per-principal bucket: the tool (or group) bucket and the
        global one, taken together or not at all."""
        now = self._clock()
        second = self._tool_bucket(principal, tool, now)
        if second is None and self._global is None:  # the common case
            return ALLOWED
        return self._take(now, None, second, self._global)

    def _principal_bucket(self, principal: str, now: float) -> TokenBucket | None:
        bucket = self._buckets.get(principal)  # the hot path, inlined from _bucket
        if bucket is not None:
            self._buckets.move_to_end(principal)
            return bucket
        return self._bucket(principal, self._per_principal, now)

    def _tool_bucket(self, principal: str, tool: str | None, now: float) -> TokenBucket | None:
        if tool is None:
            return None
        found = self._overrides(tool) if self._overrides else None
        if found is not None:
            return self._bucket((principal, found[0]), found[1], now)
        return self._bucket((principal, tool), self._per_tool, now)

    @staticmethod
    def _take(
        now: float, first: TokenBucket | None, second: TokenBucket | None, third: TokenBucket | None
    ) -> RateDecision:
        """One token from each bucket given, if each has one; else none and the refusal."""
        if second is None and third is None and first is not None:  # the common case
            delay = first.take(now)
            return ALLOWED if delay == 0.0 else _refused(delay, "principal")
        delay, scope = 0.0, None
        for bucket, name in zip((first, second, third), _SCOPES, strict=True):
            if bucket is not None:
                wait = bucket.wait(now)
                if wait > delay:
                    delay, scope = wait, scope or name
        if scope is not None:
            return _refused(delay, scope)
        for bucket in (first, second, third):
            if bucket is not None:
                bucket.tokens = max(0.0, bucket.tokens - 1.0)  # within TOLERANCE of a token
        return ALLOWED

    def _bucket(self, key: _Key, spec: RateSpec | None, now: float) -> TokenBucket | None:
        if spec is None:
            return None
        buckets = self._buckets
        bucket = buckets.get(key)
        if bucket is not None:
            buckets.move_to_end(key)
            return bucket
        bucket = buckets[key] = TokenBucket(spec.per_second, spec.capacity, now)
        if len(buckets) > self._max:
            _, oldest = buckets.popitem(last=False)
            if not oldest.is_full(now):
                self.lossy_evictions += 1
        return bucket
