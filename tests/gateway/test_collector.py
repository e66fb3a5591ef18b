"""``tune_collector`` (the gateway's garbage-collector settings) and ``CollectorWatch`` (its
pauses, for ``/metrics``), in a fresh interpreter each, since they change process state.
Why the settings: bench/connections.py, in bench/README.md."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def _run(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_tune_collector_freezes_start_up_and_raises_the_young_threshold() -> None:
    out = _run(
        """
        import gc
        from bastion.gateway.collector import YOUNG_THRESHOLD, tune_collector
        before = gc.get_freeze_count()  # 0, but some builds start with a few (3.12.1: 375)
        watch = tune_collector()
        print(gc.get_freeze_count() > before + 1000, gc.get_threshold()[0] == YOUNG_THRESHOLD)
        again = tune_collector()
        print(again is watch, gc.callbacks.count(watch))
        """
    )
    assert out.split() == ["True", "True", "True", "1"]


def test_the_watch_counts_each_collection_and_its_pause() -> None:
    out = _run(
        """
        import gc
        from bastion.gateway.collector import tune_collector
        watch = tune_collector()
        before = list(watch.collections)
        for _ in range(3):
            gc.collect()
        cycles = []
        for _ in range(50_000):  # cyclic garbage past the young threshold
            a = []; a.append(a); cycles.append(a)
        del cycles
        young = watch.collections[0] - before[0]
        print(watch.collections[2] - before[2], young >= 1)
        print(all(0 < watch.longest[g] <= watch.paused[g] for g in (0, 2)))
        """
    )
    full, young, timed = out.split()
    assert (full, young, timed) == ("3", "True", "True")
