"""Per-message JSON-RPC codec cost: Bastion's msgspec core vs the official SDK's pydantic types.

The same bytes and the same payloads go through both, in the same process, with the timed
repeats of the two sides interleaved. Four operations per message:

* decode/envelope: bytes -> JSON-RPC envelope (ours ``codec.decode``; the SDK's
  ``jsonrpc_message_adapter.validate_json``, what its stdio and HTTP transports call).
* decode/typed: the above plus the typed payload (ours ``parse_params`` into the struct; the
  SDK's ``<Type>.model_validate(..., by_name=False)``, what its server runner calls).
* encode/envelope: a built envelope -> bytes (ours ``codec.encode``; the SDK's
  ``model_dump_json(by_alias=True, exclude_unset=True)`` + ``.encode()``).
* encode/typed: a typed payload -> bytes, each side the way its server does it (ours
  ``msgspec.to_builtins`` then ``encode``; the SDK's ``model_dump(by_alias=True, mode="json",
  exclude_none=True)`` into the envelope, then ``model_dump_json``).

Figures are best-of-N timeit repeats in microseconds per message; the ratio is SDK / ours.
"""

from __future__ import annotations

import json
import platform
import sys
import time
import timeit
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from typing import Any

import mcp_types as sdk
import msgspec
from mcp_types.jsonrpc import (
    JSONRPCMessage,
    JSONRPCNotification,
    JSONRPCRequest,
    JSONRPCResponse,
    jsonrpc_message_adapter,
)
from pydantic import BaseModel

from bastion.protocol import types as t
from bastion.protocol.codec import decode, encode
from bastion.protocol.jsonrpc import Message, Notification, Request, Response
from bastion.protocol.methods import parse_params

REPEATS = 9  # timed repeats per (message, operation, side); the best one is reported
TARGET_SECONDS = 0.04  # each repeat runs this long, roughly


class ListToolsResult(t.Model, frozen=True):
    """Bastion has no tools/list result struct (it builds the dict); this is the obvious one."""

    tools: list[t.Tool]
    nextCursor: str | msgspec.UnsetType = msgspec.UNSET
    meta: dict[str, Any] | msgspec.UnsetType = msgspec.field(default=msgspec.UNSET, name="_meta")


# -- the messages ------------------------------------------------------------------------


def _tool(i: int) -> dict[str, Any]:
    return {
        "name": f"tool_{i:02d}",
        "title": f"Tool number {i}",
        "description": f"Does thing {i} to a repository: looks it up, filters and returns a page.",
        "inputSchema": {
            "type": "object",
            "properties": {
                "repo": {"type": "string", "description": "owner/name"},
                "query": {"type": "string"},
                "limit": {"type": "integer", "minimum": 1, "maximum": 100},
                "labels": {"type": "array", "items": {"type": "string"}},
            },
            "required": ["repo", "query"],
        },
        "annotations": {"readOnlyHint": True, "openWorldHint": False},
    }


CALL_REQUEST: dict[str, Any] = {
    "jsonrpc": "2.0",
    "id": 42,
    "method": "tools/call",
    "params": {
        "name": "search_issues",
        "arguments": {
            "repo": "example/project",
            "query": "label:bug state:open sort:updated",
            "limit": 25,
            "include_closed": False,
            "fields": ["title", "url", "labels", "assignees"],
        },
        "_meta": {"progressToken": "tok-42"},
    },
}
CALL_RESULT: dict[str, Any] = {
    "jsonrpc": "2.0",
    "id": 42,
    "result": {
        "content": [{"type": "text", "text": "Found 25 open issues labelled bug. " * 16}],
        "isError": False,
    },
}
LIST_RESULT: dict[str, Any] = {
    "jsonrpc": "2.0",
    "id": 7,
    "result": {"tools": [_tool(i) for i in range(20)]},
}
PROGRESS: dict[str, Any] = {
    "jsonrpc": "2.0",
    "method": "notifications/progress",
    "params": {"progressToken": "tok-42", "progress": 3.0, "total": 10.0, "message": "indexing"},
}


@dataclass(frozen=True)
class Case:
    """One message, with the typed payload class on each side."""

    label: str
    wire: dict[str, Any]
    ours_type: type[t.Model]
    sdk_type: type[BaseModel]

    @property
    def payload_key(self) -> str:
        return "params" if "method" in self.wire else "result"


CASES: tuple[Case, ...] = (
    Case("tools/call request", CALL_REQUEST, t.CallToolParams, sdk.CallToolRequestParams),
    Case("CallToolResult response", CALL_RESULT, t.CallToolResult, sdk.CallToolResult),
    Case("tools/list result, 20 tools", LIST_RESULT, ListToolsResult, sdk.ListToolsResult),
    Case("progress notification", PROGRESS, t.ProgressParams, sdk.ProgressNotificationParams),
)

# -- the operations, built per case ------------------------------------------------------

Op = Callable[[], object]


def _ours_envelope(case: Case, payload: Any) -> Message:
    w = case.wire
    if "method" not in w:
        return Response(id=w["id"], result=payload)
    if "id" in w:
        return Request(id=w["id"], method=w["method"], params=payload)
    return Notification(method=w["method"], params=payload)


def _sdk_envelope(case: Case, payload: dict[str, Any]) -> JSONRPCMessage:
    w = case.wire
    if "method" not in w:
        return JSONRPCResponse(jsonrpc="2.0", id=w["id"], result=payload)
    if "id" in w:
        return JSONRPCRequest(jsonrpc="2.0", id=w["id"], method=w["method"], params=payload)
    return JSONRPCNotification(jsonrpc="2.0", method=w["method"], params=payload)


def _sdk_dump(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(by_alias=True, mode="json", exclude_none=True)


def _sdk_json(message: JSONRPCMessage) -> bytes:
    return message.model_dump_json(by_alias=True, exclude_unset=True).encode()


def operations(case: Case) -> dict[str, tuple[Op, Op]]:
    """(ours, SDK) callables per operation; both sides get identical inputs."""
    data = json.dumps(case.wire, separators=(",", ":")).encode()
    key = case.payload_key
    raw = case.wire[key]
    ours_typed = parse_params(case.ours_type, raw)
    sdk_typed = case.sdk_type.model_validate(raw, by_name=False)
    ours_env = _ours_envelope(case, raw)
    sdk_env = _sdk_envelope(case, raw)

    def ours_decode_typed() -> t.Model:
        message = decode(data)
        return parse_params(case.ours_type, getattr(message, key))

    def sdk_decode_typed() -> BaseModel:
        message = jsonrpc_message_adapter.validate_json(data, by_name=False)
        return case.sdk_type.model_validate(getattr(message, key), by_name=False)

    return {
        "decode/envelope": (
            lambda: decode(data),
            lambda: jsonrpc_message_adapter.validate_json(data, by_name=False),
        ),
        "decode/typed": (ours_decode_typed, sdk_decode_typed),
        "encode/envelope": (lambda: encode(ours_env), lambda: _sdk_json(sdk_env)),
        "encode/typed": (
            lambda: encode(_ours_envelope(case, msgspec.to_builtins(ours_typed))),
            lambda: _sdk_json(_sdk_envelope(case, _sdk_dump(sdk_typed))),
        ),
    }


def added_keys(case: Case) -> tuple[str, str]:
    """Top-level payload keys each side's typed encode adds to or drops from the input."""
    out = []
    for op in operations(case)["encode/typed"]:
        got = json.loads(op())  # type: ignore[arg-type]
        sent, back = case.wire[case.payload_key], got[case.payload_key]
        extra = sorted(set(back) - set(sent))
        lost = sorted(set(sent) - set(back))
        same = {k: back[k] for k in sent if k in back} == {k: sent[k] for k in sent if k in back}
        note = ", ".join([*(f"+{k}" for k in extra), *(f"-{k}" for k in lost)])
        out.append(note if same else (note + " (values differ)").strip())
    return out[0], out[1]


# -- timing ------------------------------------------------------------------------------


def calibrate(fn: Op) -> int:
    number, elapsed = timeit.Timer(fn).autorange()
    per_call = elapsed / number
    return max(1, int(TARGET_SECONDS / per_call))


def best_pair(ours: Op, theirs: Op) -> tuple[float, float]:
    """Best-of-REPEATS µs per call for each side, repeats interleaved ours/SDK."""
    n_ours, n_sdk = calibrate(ours), calibrate(theirs)
    t_ours, t_sdk = timeit.Timer(ours), timeit.Timer(theirs)
    best_ours = best_sdk = float("inf")
    for _ in range(REPEATS):
        best_ours = min(best_ours, t_ours.timeit(n_ours) / n_ours)
        best_sdk = min(best_sdk, t_sdk.timeit(n_sdk) / n_sdk)
    return best_ours * 1e6, best_sdk * 1e6


def main() -> int:
    started = time.perf_counter()
    print(f"codec benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(
        f"python {platform.python_version()}, msgspec {version('msgspec')}, "
        f"mcp {version('mcp')}, pydantic {version('pydantic')}, pydantic-core "
        f"{version('pydantic-core')}; best of {REPEATS} repeats of ~{TARGET_SECONDS * 1e3:.0f} ms"
    )
    print()
    header = (
        f"{'message':<29} {'bytes':>6}  {'operation':<16} "
        f"{'ours µs':>9} {'SDK µs':>9} {'SDK/ours':>9}"
    )
    print(header)
    print("-" * len(header))
    notes: list[str] = []
    for case in CASES:
        size = len(json.dumps(case.wire, separators=(",", ":")))
        for name, (ours, theirs) in operations(case).items():
            us_ours, us_sdk = best_pair(ours, theirs)
            print(
                f"{case.label:<29} {size:>6}  {name:<16} {us_ours:>9.2f} {us_sdk:>9.2f} "
                f"{us_sdk / us_ours:>8.1f}x"
            )
        ours_note, sdk_note = added_keys(case)
        if ours_note or sdk_note:
            notes.append(
                f"  {case.label}: ours [{ours_note or 'as sent'}], SDK [{sdk_note or 'as sent'}]"
            )
    if notes:
        print("\nencode/typed output vs the input payload (+added, -dropped top-level keys):")
        print("\n".join(notes))
    print(f"\ntook {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
