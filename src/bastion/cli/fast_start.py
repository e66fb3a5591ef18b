"""The stdio gateway's fast start: answer ``initialize`` before the rest of Bastion loads.

A desktop client waits for this answer, and most of a cold start is imports (asyncio,
msgspec, YAML, ...). The answer depends on nothing but the request (the gateway declares
fixed capabilities), so it is written with the standard library's ``json`` right after the
interpreter starts; the session then continues where this left off (``EarlyStart``). Any
other first message is left untouched for the full server.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from bastion import __version__
from bastion.gateway.declared import GATEWAY_CAPABILITIES, GATEWAY_NAME
from bastion.protocol.versions import negotiate_legacy

__all__ = ["EarlyStart", "answer_initialize_early"]

FIRST_LINE_MAX = 1024 * 1024  # an initialize request is small; anything bigger is not one


@dataclass(frozen=True)
class EarlyStart:
    """What the full server must know: bytes read but not handled, and the session."""

    unread: bytes
    version: str | None = None  # set when initialize was answered
    client_capabilities: dict[str, Any] | None = None


def answer_initialize_early(stdin: int = 0, stdout: int = 1) -> EarlyStart:
    buffer = b""
    while b"\n" not in buffer and len(buffer) <= FIRST_LINE_MAX:
        chunk = os.read(stdin, 65536)
        if not chunk:
            return EarlyStart(unread=buffer)
        buffer += chunk
    line, newline, rest = buffer.partition(b"\n")
    try:
        message = json.loads(line)
    except (ValueError, RecursionError):
        return EarlyStart(unread=buffer)
    params = message.get("params") if isinstance(message, dict) else None
    request_id = message.get("id") if isinstance(message, dict) else None
    if (
        not newline
        or message.get("jsonrpc") != "2.0"
        or message.get("method") != "initialize"
        or not isinstance(request_id, int | str)
        or isinstance(request_id, bool)
        or not isinstance(params, dict)
        or not isinstance(params.get("protocolVersion"), str)
        or not isinstance(params.get("capabilities"), dict)
        or not isinstance(params.get("clientInfo"), dict)
    ):
        return EarlyStart(unread=buffer)  # the full server validates and answers
    version = negotiate_legacy(params["protocolVersion"])
    answer = {
        "id": request_id,
        "result": {
            "protocolVersion": version,
            "capabilities": GATEWAY_CAPABILITIES,
            "serverInfo": {"name": GATEWAY_NAME, "version": __version__},
        },
        "jsonrpc": "2.0",
    }
    data = json.dumps(answer, separators=(",", ":")).encode() + b"\n"
    while data:
        data = data[os.write(stdout, data) :]
    return EarlyStart(unread=rest, version=version, client_capabilities=params["capabilities"])
