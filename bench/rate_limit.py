"""Cost of one ``RateLimiter.check``, beside a baseline measured in the same run.

Cases (best-of-N timeit repeats, ns per call, over 1,000 principals round robin so the
bucket table is warm but not a single hot entry):

* baseline: ``counts[key] += 1`` on a dict, the least a per-principal counter can cost;
* principal: ``check(principal)`` with the default settings (one bucket, LRU upkeep);
* principal+tool+global: ``check(principal, tool)`` with a tool override glob and a
  global bucket (three buckets per call);
* churn: ``check`` over 200,000 principals with ``max_tracked=10,000`` (every call
  creates a bucket and evicts one).
"""

from __future__ import annotations

import platform
import sys
import timeit
from collections.abc import Callable

from bastion.limits import RateLimiter, parse_limits

REPEATS = 7
PRINCIPALS = [f"principal-{i}" for i in range(1000)]
TOOLS = ["workspace__exec", "github__search", "workspace__read", "files__list"]


def best_ns(fn: Callable[[], None], calls: int, number: int = 20) -> float:
    return min(timeit.repeat(fn, number=number, repeat=REPEATS)) / (number * calls) * 1e9


def main() -> int:
    counts: dict[str, int] = dict.fromkeys(PRINCIPALS, 0)
    lenient = {"rate": 1e9, "burst": 1_000_000_000}  # every call admitted: measure the path
    simple = RateLimiter(parse_limits({"per_principal": lenient}))
    full = RateLimiter(
        parse_limits(
            {
                "per_principal": lenient,
                "global": lenient,
                "tools": [{"match": "workspace__exec*", **lenient}],
                "per_tool": lenient,
            }
        )
    )
    churn = RateLimiter(parse_limits({"per_principal": lenient, "max_tracked": 10_000}))
    many = [f"p{i}" for i in range(200_000)]
    pairs = [(p, TOOLS[i % len(TOOLS)]) for i, p in enumerate(PRINCIPALS)]

    def baseline() -> None:
        for p in PRINCIPALS:
            counts[p] += 1

    def principal() -> None:
        check = simple.check
        for p in PRINCIPALS:
            check(p)

    def three() -> None:
        check = full.check
        for p, t in pairs:
            check(p, t)

    def churning() -> None:
        check = churn.check
        for p in many:
            check(p)

    n = len(PRINCIPALS)
    base = best_ns(baseline, n)
    rows = [
        ("baseline dict +=1", base),
        ("principal", best_ns(principal, n)),
        ("principal+tool+global", best_ns(three, n)),
        ("churn (evicting)", best_ns(churning, len(many), number=1)),
    ]
    print(f"python {platform.python_version()} on {platform.machine()}, {n} principals")
    print(f"{'case':<24}{'ns/check':>10}{'x baseline':>12}")
    for name, ns in rows:
        print(f"{name:<24}{ns:>10.0f}{ns / base:>12.1f}")
    print(f"tracked after churn: {churn.tracked} (max 10000)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
