"""Cost of one policy decision with 1,000 rules, beside baselines measured in the same run.

Rules are generated like a real deployment: 1,000 rules over 100 upstream namespaces, each
naming a few tools exactly or by namespace glob, some with argument conditions, a tenth of
them denies. Three measurements, best-of-N timeit repeats, µs per decision:

* engine/1000: ``Policy.decide`` over the 1,000 rules (the index narrows the candidates),
  as a gateway meets it: the 200 requests repeat, so the engine's plans (who/what per
  principal, roles, method and target) are reused and only conditions are evaluated;
* engine/1000 first: the same, but every decision is the first of its kind (the plan table
  emptied before each), the cost of a new principal or target;
* engine/10: the same engine over the first 10 rules (the floor: request plumbing);
* naive/1000: a linear scan of the same 1,000 rules with ``fnmatch.fnmatchcase`` and the
  same deny-wins logic, which is what a straightforward implementation would do.
"""

from __future__ import annotations

import fnmatch
import platform
import random
import sys
import timeit
from datetime import UTC, datetime
from typing import Any

import msgspec

from bastion.policy import Policy, PolicyFile, PolicyRequest, Target

RULES = 1000
NAMESPACES = 100
REPEATS = 7


def make_rules(count: int, seed: int = 1) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    rules: list[dict[str, Any]] = []
    for i in range(count):
        ns = f"srv{i % NAMESPACES}"
        tools = (
            [f"{ns}__*"]
            if rng.random() < 0.3
            else [f"{ns}__tool{rng.randrange(50)}" for _ in range(3)]
        )
        rule: dict[str, Any] = {
            "id": f"r{i}",
            "effect": "deny" if rng.random() < 0.1 else "allow",
            "roles": [rng.choice(["admin", "developer", "viewer"])],
            "tools": tools,
        }
        if rng.random() < 0.2:
            rule["when"] = {"args": {"limit": {"le": rng.randrange(100, 1000)}}}
        rules.append(rule)
    return rules


def build(rules: list[dict[str, Any]]) -> Policy:
    roles = {"admin": None, "developer": None, "viewer": None}
    return Policy(msgspec.convert({"roles": roles, "rules": rules}, PolicyFile))


def naive(rules: list[dict[str, Any]], request: PolicyRequest) -> str:
    """A linear fnmatch scan with deny-wins; argument conditions are checked too."""
    allowed = False
    assert request.target is not None
    for rule in rules:
        if not set(rule["roles"]) & set(request.roles):
            continue
        if not any(fnmatch.fnmatchcase(request.target.name, g) for g in rule["tools"]):
            continue
        limit = rule.get("when", {}).get("args", {}).get("limit", {}).get("le")
        if limit is not None and not request.arguments.get("limit", 1 << 60) <= limit:
            continue
        if rule["effect"] == "deny":
            return "deny"
        allowed = True
    return "allow" if allowed else "deny"


def best_us(fn: Any, number: int) -> float:
    return min(timeit.repeat(fn, number=number, repeat=REPEATS)) / number * 1e6


def main() -> int:
    rules = make_rules(RULES)
    big, small = build(rules), build(rules[:10])
    rng = random.Random(2)
    requests = [
        PolicyRequest(
            principal="p",
            roles=(rng.choice(["admin", "developer", "viewer"]),),
            method="tools/call",
            target=Target("tool", f"srv{rng.randrange(NAMESPACES)}__tool{rng.randrange(50)}"),
            arguments={"limit": rng.randrange(0, 1200)},
            at=datetime(2025, 1, 6, 12, tzinfo=UTC),
        )
        for _ in range(200)
    ]
    mismatches = sum(big.decide(r).effect != naive(rules, r) for r in requests)
    allowed = sum(big.decide(r).allowed for r in requests)

    def run_big() -> None:
        for r in requests:
            big.decide(r)

    def run_big_first() -> None:
        for r in requests:
            big._plans.clear()  # private on purpose: the bench prices the unplanned path
            big.decide(r)

    def run_small() -> None:
        for r in requests:
            small.decide(r)

    def run_naive() -> None:
        for r in requests:
            naive(rules, r)

    n = len(requests)
    engine_big = best_us(run_big, 20) / n
    engine_first = best_us(run_big_first, 20) / n
    engine_small = best_us(run_small, 20) / n
    naive_big = best_us(run_naive, 2) / n
    where = f"python {platform.python_version()} on {platform.machine()}"
    print(f"{where}, {RULES} rules, {n} requests ({allowed} allowed)")
    print(f"effect mismatches between the engine and the naive scan: {mismatches}")
    print(f"{'case':<18}{'µs/decision':>12}{'ratio':>22}")
    print(f"{'engine/10':<18}{engine_small:>12.2f}{'1.00 (floor)':>22}")
    print(f"{'engine/1000':<18}{engine_big:>12.2f}{engine_big / engine_small:>17.2f} x floor")
    first = f"{engine_first / engine_small:>17.2f} x floor"
    print(f"{'engine/1000 first':<18}{engine_first:>12.2f}{first}")
    print(f"{'naive/1000':<18}{naive_big:>12.2f}{naive_big / engine_first:>17.1f} x first")
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
