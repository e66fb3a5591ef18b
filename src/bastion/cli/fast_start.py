"""The gateway's stdio fast start: answer ``initialize`` before the rest of Bastion loads.

A desktop client waits for this answer, and most of a cold start is imports (asyncio,
msgspec, YAML, ...). The answer depends on nothing but the request (the gateway declares
fixed capabilities), so it is written with the standard library's ``json`` right after the
interpreter starts; the session then continues where this left off (``EarlyStart``). The
full server reads that ``initialize`` again and serves it through the security pipeline, so
it is authorized and audited like any request (``transport.fast_started``); its second
answer stays off the wire.

Only a first line that the full server would take as a valid 2025-11-25 ``initialize``
request is answered here (``initialize_request``): one that ``protocol.codec`` decodes (no
NaN or infinite number, no lone surrogate, valid UTF-8, nesting within its depth limit, no
envelope field but ``jsonrpc``, ``id``, ``method`` and ``params``) and whose params
``InitializeParams`` accepts, without a 2026-07-28 ``_meta``. Where the standard library
could disagree with msgspec, it says no. Anything else, JSON or not, is left unread for the
full server, which answers it as on any later line (IN-1, IN-2). msgspec itself would cost
the fast start about as much again as it takes now, hence the checks here; a test holds
them to the real decoder.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from typing import Any, Final

from bastion import __version__
from bastion.gateway.declared import GATEWAY_CAPABILITIES, GATEWAY_NAME
from bastion.protocol.versions import META_PROTOCOL_VERSION, negotiate_legacy

__all__ = ["EarlyStart", "answer_initialize_early", "initialize_request"]

FIRST_LINE_MAX: Final = 1024 * 1024  # an initialize request is small; anything bigger is not one
MAX_DEPTH: Final = 64  # protocol.codec.DEFAULT_MAX_DEPTH, without importing msgspec
ENVELOPE_FIELDS: Final = frozenset({"jsonrpc", "id", "method", "params"})


@dataclass(frozen=True)
class EarlyStart:
    """What the full server must know: bytes read but not handled, and the session."""

    unread: bytes  # with the answered initialize line: the full server serves it again
    version: str | None = None  # set when initialize was answered
    client_capabilities: dict[str, Any] | None = None
    answered: int | str | None = None  # the id of the initialize answered here


def answer_initialize_early(stdin: int = 0, stdout: int = 1) -> EarlyStart:
    buffer = b""
    while b"\n" not in buffer and len(buffer) <= FIRST_LINE_MAX:
        chunk = os.read(stdin, 65536)
        if not chunk:
            return EarlyStart(unread=buffer)
        buffer += chunk
    line, newline, _ = buffer.partition(b"\n")
    request = initialize_request(line) if newline else None
    if request is None:
        return EarlyStart(unread=buffer)  # the full server decodes and answers it
    request_id, params = request
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
    return EarlyStart(
        unread=buffer,
        version=version,
        client_capabilities=params["capabilities"],
        answered=request_id,
    )


def initialize_request(line: bytes) -> tuple[int | str, dict[str, Any]] | None:
    """The id and params of ``line`` if it is an ``initialize`` request the full server
    would accept as one; None for anything else, or when unsure."""
    if line.count(b"{") + line.count(b"[") > MAX_DEPTH:
        return None  # it might nest deeper than the decoder allows
    try:
        message = json.loads(line.decode("utf-8"), parse_constant=_refuse_constant)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None
    if type(message) is not dict or not message.keys() <= ENVELOPE_FIELDS:
        return None
    request_id = message.get("id")
    params = message.get("params")
    if (
        message.get("jsonrpc") != "2.0"
        or message.get("method") != "initialize"
        or not isinstance(request_id, int | str)  # not null, float, ...
        or isinstance(request_id, bool)
        or type(params) is not dict
        or not _initialize_params(params)
        or not _msgspec_reads_alike(message)
    ):
        return None
    return request_id, params


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _initialize_params(params: dict[str, Any]) -> bool:
    """What ``InitializeParams`` requires, and not a 2026-07-28 request (its ``_meta``)."""
    info = params.get("clientInfo")
    meta = params.get("_meta", {})
    return (
        type(params.get("protocolVersion")) is str
        and type(params.get("capabilities")) is dict
        and type(info) is dict
        and type(info.get("name")) is str
        and type(info.get("version")) is str
        and type(info.get("title", "")) is str
        and type(meta) is dict
        and META_PROTOCOL_VERSION not in meta
    )


def _msgspec_reads_alike(value: Any) -> bool:
    """No value msgspec would refuse where ``json`` took it: an infinite number (``1e400``)
    or a string holding a lone surrogate (``"\\ud800"``), as a key or a value."""
    pending = [value]
    while pending:
        item = pending.pop()
        kind = type(item)
        if kind is dict:
            if not all(_encodable(key) for key in item):
                return False
            pending.extend(item.values())
        elif kind is list:
            pending.extend(item)
        elif (kind is str and not _encodable(item)) or (kind is float and not math.isfinite(item)):
            return False
    return True


def _encodable(text: str) -> bool:
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
