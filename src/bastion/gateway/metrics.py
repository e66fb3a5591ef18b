"""Prometheus metrics of a running gateway (DS-4, AD-5), in the text exposition format.

Process figures (resident memory, CPU time, garbage-collector pauses) and counts only:
sessions, upstream replicas by state. No label carries a name, a principal, a URL or
anything from a request, so the page can be served without authentication and scraped
without exposing secrets.
"""

from __future__ import annotations

import os
import resource
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from bastion._types import JSONObject
from bastion.gateway.collector import CollectorWatch

__all__ = ["render_metrics"]

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def resident_bytes() -> int:
    """Current resident set size (``/proc/self/statm``), else the peak (``getrusage``)."""
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def render_metrics(
    sessions: int, upstreams: Iterable[JSONObject], collector: CollectorWatch | None = None
) -> bytes:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    states = Counter(str(replica.get("state")) for replica in upstreams)
    lines = [
        "# HELP process_resident_memory_bytes Resident memory size in bytes.",
        "# TYPE process_resident_memory_bytes gauge",
        f"process_resident_memory_bytes {resident_bytes()}",
        "# HELP process_cpu_seconds_total User and system CPU time spent in seconds.",
        "# TYPE process_cpu_seconds_total counter",
        f"process_cpu_seconds_total {usage.ru_utime + usage.ru_stime:.3f}",
        "# HELP bastion_http_sessions Open 2025-11-25 sessions on the HTTP face.",
        "# TYPE bastion_http_sessions gauge",
        f"bastion_http_sessions {sessions}",
        "# HELP bastion_upstream_replicas Upstream replicas by state.",
        "# TYPE bastion_upstream_replicas gauge",
        *(f'bastion_upstream_replicas{{state="{s}"}} {n}' for s, n in sorted(states.items())),
    ]
    if collector is not None:
        lines += _collector_lines(collector)
    return ("\n".join(lines) + "\n").encode()


def _collector_lines(watch: CollectorWatch) -> list[str]:
    """Collections and their pauses per generation (2: full collections)."""
    per = range(len(watch.collections))
    return [
        "# HELP python_gc_collections_total Garbage collections, by generation.",
        "# TYPE python_gc_collections_total counter",
        *(f'python_gc_collections_total{{generation="{g}"}} {watch.collections[g]}' for g in per),
        "# HELP bastion_gc_pause_seconds_total Time stopped in garbage collections.",
        "# TYPE bastion_gc_pause_seconds_total counter",
        *(f'bastion_gc_pause_seconds_total{{generation="{g}"}} {watch.paused[g]:.6f}' for g in per),
        "# HELP bastion_gc_pause_seconds_max The longest garbage-collection pause so far.",
        "# TYPE bastion_gc_pause_seconds_max gauge",
        *(f'bastion_gc_pause_seconds_max{{generation="{g}"}} {watch.longest[g]:.6f}' for g in per),
    ]
