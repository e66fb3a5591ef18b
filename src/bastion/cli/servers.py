"""``bastion servers list``: each upstream of a running gateway.

A gateway without auth (the local user's, on loopback) lists its upstreams on ``/readyz``.
One that authenticates its callers says only whether it is ready there (IN-5): the list
comes from the admin API's ``/api/v1/upstreams``, with an admin key (``--key`` or
``BASTION_ADMIN_KEY``), which is also used whenever one is given.
"""

from __future__ import annotations

import sys
from typing import Final

import httpx
import msgspec

__all__ = ["KEY_ENV", "run_servers_list"]

KEY_ENV: Final = "BASTION_ADMIN_KEY"
TIMEOUT_S: Final = 5.0  # a gateway on loopback answers a status read at once
EX_USAGE: Final = 64
EX_UNAVAILABLE: Final = 69
EX_NOPERM: Final = 77


class _Failed(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def run_servers_list(url: str, *, as_json: bool, key: str | None = None) -> int:
    base = url.rstrip("/")
    try:
        ready, upstreams = _status(base, key)
    except _Failed as exc:
        print(f"bastion: {exc}", file=sys.stderr)
        return exc.code
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
    return 0 if ready else 1


def _status(base: str, key: str | None) -> tuple[bool, list[dict[str, object]]]:
    report = _get_json(base, "/readyz", None)
    ready = bool(report.get("ready"))
    if key is None:
        if "upstreams" not in report:
            raise _Failed(
                f"{base} authenticates its callers: pass an admin API key with --key "
                f"or in {KEY_ENV}",
                EX_USAGE,
            )
        return ready, list(report["upstreams"])
    listed = _get_json(base, "/api/v1/upstreams", key)
    return ready, list(listed.get("upstreams", []))


def _get_json(base: str, path: str, key: str | None) -> dict[str, list[dict[str, object]]]:
    headers = {"authorization": f"Bearer {key}"} if key is not None else {}
    try:
        response = httpx.get(base + path, headers=headers, timeout=TIMEOUT_S)
    except httpx.HTTPError as exc:
        raise _Failed(f"cannot reach {base}: {type(exc).__name__}", EX_UNAVAILABLE) from exc
    if response.status_code == 401:
        raise _Failed(f"{base} refused the key (401): is it a valid API key?", EX_NOPERM)
    if response.status_code == 403:
        raise _Failed(f"{base} refused the key (403): it needs the admin role", EX_NOPERM)
    if response.status_code == 429:
        raise _Failed(f"{base} is throttling this address (429): try again later", EX_NOPERM)
    try:
        report = msgspec.json.decode(response.content)
    except msgspec.DecodeError:
        report = None
    if not isinstance(report, dict):
        raise _Failed(f"{base} did not answer like a Bastion gateway", EX_UNAVAILABLE)
    return report
