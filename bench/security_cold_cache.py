"""Cold caches: the security checks of one call, back to back vs between unrelated work.

Why does the pipeline cost 2-4x more per call inside a loaded gateway (``security_parts.py``)
than in a tight loop (``security_overhead.py``'s in-process table)? In the gateway, between
two requests, its own HTTP, MCP and upstream code runs and pushes the checks' code and data
out of the CPU caches. This script measures that effect alone, in process: one bundle of
checks (an API-key verify against a real SQLite key store, a policy decision, a rate-limit
check, a sanitised tool result) timed

* tight: call after call, as a micro-benchmark runs it;
* between work: with a stand-in for a server's work before each call (16 MiB of memory
  touched, and JSON encoding and decoding of unrelated objects), timed apart from it.

Rows alternate (tight, between work, tight, between work) so drift shows; µs per bundle.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import msgspec

from bastion.auth import KeyStore
from bastion.guard.sanitise import Sanitiser
from bastion.limits import RateLimiter
from bastion.limits.settings import LimitSettings
from bastion.policy import Policy, PolicyFile, PolicyRequest, Target

HUGE = {"rate": 1e9, "burst": 1_000_000_000}  # a limit that never refuses
POLICY = {
    "roles": {"bench": None},
    "rules": [
        {"id": "fx", "effect": "allow", "roles": ["bench"], "tools": ["fx__*"]},
        {
            "id": "no-secret-echo",
            "effect": "deny",
            "roles": ["bench"],
            "tools": ["fx__echo"],
            "when": {"args": {"text": {"glob": "*password*"}}},
        },
    ],
}
RESULT = {"content": [{"type": "text", "text": "hello"}], "isError": False}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000, help="bundles per row (default 3000)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bastion-cold-") as tmp:
        keys = KeyStore(Path(tmp) / "keys.db")
        _, key = keys.create("bench", ["bench"])
        now = time.time()
        keys.verify(key, now)  # the first verify records its use; later ones only read
        sanitiser = Sanitiser()
        limits = RateLimiter(
            msgspec.convert(
                {"per_principal": HUGE, "per_tool": HUGE, "global": HUGE}, LimitSettings
            )
        )
        policy = Policy(msgspec.convert(POLICY, PolicyFile))
        target = Target("tool", "fx__echo")

        def bundle() -> None:
            keys.verify(key, now)
            request = PolicyRequest(
                principal="apikey:bench",
                method="tools/call",
                at=datetime.now(UTC),
                roles=("bench",),
                target=target,
                arguments={"text": "hello"},
            )
            assert policy.decide(request).allowed
            assert limits.check("apikey:bench", "fx__echo").allowed
            sanitiser.tool_result(RESULT)

        memory = bytearray(16 * 1024 * 1024)
        objects = [{f"k{i}": [i, str(i), {"x": i}]} for i in range(20_000)]
        rng = random.Random(1)

        def other_work() -> None:
            for i in range(0, len(memory), 4096):
                memory[i] = (memory[i] + 1) & 255
            start = rng.randrange(0, 19_000)
            msgspec.json.decode(msgspec.json.encode(objects[start : start + 500]))
            json.dumps(objects[:50])

        print(f"security checks per call, cold vs warm caches; python {sys.version.split()[0]}")
        print(f"{'row':<14} {'µs/bundle':>10}")
        for mode in ("tight", "between work", "tight", "between work"):
            total = 0.0
            for _ in range(args.calls):
                if mode == "between work":
                    other_work()
                started = time.perf_counter()
                bundle()
                total += time.perf_counter() - started
            print(f"{mode:<14} {total / args.calls * 1e6:>10.1f}")
        keys.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
