"""``bastion servers list``: each upstream of a running gateway, from its ``/readyz``."""

from __future__ import annotations

import sys

import httpx
import msgspec

__all__ = ["run_servers_list"]


def run_servers_list(url: str, *, as_json: bool) -> int:
    try:
        response = httpx.get(url.rstrip("/") + "/readyz", timeout=5)
    except httpx.HTTPError as exc:
        print(f"bastion: cannot reach {url}: {type(exc).__name__}", file=sys.stderr)
        return 69  # EX_UNAVAILABLE
    try:
        report = msgspec.json.decode(response.content)
    except msgspec.DecodeError:
        print(f"bastion: {url} did not answer like a Bastion gateway", file=sys.stderr)
        return 69
    upstreams = report.get("upstreams", []) if isinstance(report, dict) else []
    if as_json:
        print(msgspec.json.encode(upstreams).decode())
    else:
        print(f"{'SERVER':<20} {'STATE':<13} {'PID':>7} {'RESTARTS':>8}  LAST ERROR")
        for u in upstreams:
            name = u["server"] if u.get("replica", 0) == 0 else f"{u['server']}#{u['replica']}"
            pid = "-" if u.get("pid") is None else str(u["pid"])
            print(
                f"{name:<20} {u['state']:<13} {pid:>7} {u['restarts']:>8}  "
                f"{u.get('lastError') or ''}"
            )
    return 0 if report.get("ready") else 1
