"""Cost of verifying one API key against the SQLite key store, beside baselines measured in
the same run, µs per call (best-of-N timeit repeats):

* keystore/verify: ``KeyStore.verify`` on a store of N keys: HMAC-SHA256 of the key, one
  ``PRAGMA data_version`` per call (the key's row is read again whenever another connection
  has committed, so a revocation by another process is seen at once), compare;
* keystore/cached: the same HMAC + compare against a dict held in memory, which is what a
  store that caches records (and so would miss revocations) would pay;
* dict/lookup: a plain ``dict`` lookup of the presented string, the floor.
"""

from __future__ import annotations

import argparse
import hmac
import platform
import sys
import tempfile
import time
import timeit
from pathlib import Path

from bastion.auth import KeyStore

REPEATS = 7


def measure(fn: object, number: int) -> float:
    timer = timeit.Timer(fn)  # type: ignore[arg-type]
    return min(timer.repeat(repeat=REPEATS, number=number)) / number * 1e6


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--keys", type=int, default=10_000, help="keys in the store")
    parser.add_argument("--number", type=int, default=5_000, help="calls per repeat")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = KeyStore(Path(tmp) / "keys.db")
        plaintexts = []
        conn = store._conn
        conn.execute("BEGIN")  # bulk-load fast; the bench measures reads
        for i in range(args.keys):
            _, key = store._insert(
                conn, name=f"k{i}", roles=("user",), now=time.time(), expires=None,
                rotated_from=None, break_glass=False,
            )  # fmt: skip
            plaintexts.append(key)
        conn.execute("COMMIT")
        probe = plaintexts[len(plaintexts) // 2]
        now = time.time()
        store.verify(probe, now)  # last_used written now; later calls are reads only
        pepper = store._pepper
        cached = {k.split("_")[1]: hmac.digest(pepper, k.encode(), "sha256") for k in plaintexts}
        plain = dict.fromkeys(plaintexts, "record")

        def in_memory() -> bool:
            digest = hmac.digest(pepper, probe.encode(), "sha256")
            return hmac.compare_digest(digest, cached[probe[4:16]])

        rows = [
            ("keystore/verify", measure(lambda: store.verify(probe, now), args.number)),
            ("keystore/cached", measure(in_memory, args.number)),
            ("dict/lookup", measure(lambda: plain[probe], args.number)),
        ]
        store.close()
    print(f"# auth_verify: {args.keys} keys; python {sys.version.split()[0]}, {platform.machine()}")
    print(f"{'case':<18} {'us/call':>10}")
    for name, micros in rows:
        print(f"{name:<18} {micros:>10.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
