"""What an upstream sends a client besides its answer (TC-4, IN-5, UP-4): untrusted too.

Mid-call ``sampling/createMessage`` and ``elicitation/create`` requests go through the
result filter (a sampling request's messages are walked like a prompt's, the rest as
arbitrary JSON): secrets masked, invisible characters stripped, injection annotated, or the
whole request blocked. A sampling request's ``includeContext`` becomes ``"none"`` (a
``context-request`` finding): to the client the gateway is one server, so ``thisServer`` or
``allServers`` would hand an upstream the context of the others (and the gateway offers
upstreams sampling without ``context``). Log lines (``data``, ``logger``) and progress
``message``s are cleaned like an upstream error (``peer_errors``): filtered, internal URLs
replaced, and capped (``MAX_LOG_CHARS`` of encoded ``data``, ``MAX_MESSAGE`` characters of
text); a blocked one keeps its level or progress but loses its text. Completion values are
filtered as one list, at most ``MAX_COMPLETION_VALUES`` of them (the spec's cap), each still
a string (one longer than ``MAX_COMPLETION_CHARS`` once filtered is dropped).
"""

from __future__ import annotations

from typing import Final

import msgspec

from bastion._types import JSONObject, JSONValue
from bastion.guard.findings import Finding
from bastion.guard.peer_errors import MAX_MESSAGE, mask_internal_urls
from bastion.guard.sanitise import Sanitised, Sanitiser

__all__ = [
    "INPUT_REQUEST_METHODS",
    "MAX_COMPLETION_CHARS",
    "MAX_COMPLETION_VALUES",
    "MAX_LOG_CHARS",
    "WITHHELD_LOG",
    "clean_completion",
    "clean_input_request",
    "clean_input_requests",
    "clean_log",
    "clean_progress",
]

INPUT_REQUEST_METHODS: Final = frozenset({"sampling/createMessage", "elicitation/create"})
MAX_LOG_CHARS: Final = 16 * 1024  # characters of a log line's data, JSON-encoded
MAX_COMPLETION_VALUES: Final = 100  # the spec's cap on completion values
MAX_COMPLETION_CHARS: Final = 4096  # a longer (filtered) completion value is dropped
WITHHELD_LOG: Final = "[Bastion withheld this log message: it looks like a prompt injection.]"
_CUT: Final = "… [truncated by Bastion]"


def clean_input_request(method: str, params: JSONObject, sanitiser: Sanitiser) -> Sanitised:
    """A sampling or elicitation request's ``params`` as the client may see them."""
    if method == "sampling/createMessage":
        return _without_context(sanitiser.prompt_result(params))  # messages like a prompt's
    # An elicitation's requestedSchema names the fields it asks for ("token", "password"):
    # masking them by name would break the form; their descriptions are still scanned.
    return sanitiser.value(params, "$.params", by_name=False)


def clean_input_requests(requests: JSONValue, sanitiser: Sanitiser) -> Sanitised:
    """A 2026-07-28 input-required result's ``inputRequests``, each filtered like a
    2025-11-25 request; blocked when any one is."""
    if not isinstance(requests, dict):
        return Sanitised(requests)
    out: JSONObject = {}
    findings: list[Finding] = []
    for key, request in requests.items():
        params = request.get("params") if isinstance(request, dict) else None
        if not isinstance(request, dict) or not isinstance(params, dict):
            cleaned = sanitiser.value(request, f"$.inputRequests[{len(out)}]")
        else:
            method = request.get("method")
            one = clean_input_request(str(method), params, sanitiser)
            cleaned = Sanitised({**request, "params": one.value}, one.findings, one.blocked)
        findings.extend(cleaned.findings)
        if cleaned.blocked:
            return Sanitised(None, tuple(findings), blocked=True)
        out[key] = cleaned.value
    return Sanitised(out, tuple(findings))


def _without_context(cleaned: Sanitised) -> Sanitised:
    params = cleaned.value
    if cleaned.blocked or not isinstance(params, dict):
        return cleaned
    asked = params.get("includeContext", "none")
    if asked == "none":
        return cleaned
    excerpt = asked if asked in ("thisServer", "allServers") else ""
    found = Finding(kind="context-request", path="$.params.includeContext", excerpt=excerpt)
    return Sanitised({**params, "includeContext": "none"}, (*cleaned.findings, found))


def clean_log(params: JSONObject, sanitiser: Sanitiser) -> tuple[JSONObject, list[Finding]]:
    """A ``notifications/message``'s params: ``data`` and ``logger`` cleaned and capped."""
    cleaned = sanitiser.value(params.get("data"), "$.log.data")
    findings = list(cleaned.findings)
    data = WITHHELD_LOG if cleaned.blocked else mask_internal_urls(cleaned.value, findings)
    encoded = msgspec.json.encode(data).decode()
    if len(encoded) > MAX_LOG_CHARS:
        data = encoded[:MAX_LOG_CHARS] + _CUT
        findings.append(Finding(kind="truncated", path="$.log.data", excerpt=str(len(encoded))))
    out = {**params, "data": data}
    logger = params.get("logger")
    if isinstance(logger, str):
        name = _text(logger, "$.log.logger", sanitiser, findings)
        if name is None:
            del out["logger"]
        else:
            out["logger"] = name
    return out, findings


def clean_progress(params: JSONObject, sanitiser: Sanitiser) -> tuple[JSONObject, list[Finding]]:
    """A ``notifications/progress``'s params: ``message`` cleaned and capped."""
    message = params.get("message")
    if not isinstance(message, str):
        return params, []
    findings: list[Finding] = []
    text = _text(message, "$.progress.message", sanitiser, findings)
    out = {key: value for key, value in params.items() if key != "message"}
    if text is not None:
        out["message"] = text
    return out, findings


def clean_completion(completion: JSONObject, sanitiser: Sanitiser | None) -> Sanitised:
    """A ``completion/complete`` result's ``completion``: string values only, filtered
    (unless ``sanitiser`` is None: result filtering off), at most ``MAX_COMPLETION_VALUES``;
    ``hasMore`` is set when values were left out for that cap."""
    values = completion.get("values")
    strings = [v for v in values if isinstance(v, str)] if isinstance(values, list) else []
    more = len(strings) > MAX_COMPLETION_VALUES
    kept: JSONValue = strings[:MAX_COMPLETION_VALUES]
    findings: tuple[Finding, ...] = ()
    if sanitiser is not None:
        cleaned = sanitiser.value(kept, "$.completion.values")
        if cleaned.blocked:
            return Sanitised(None, cleaned.findings, blocked=True)
        kept, findings = cleaned.value, cleaned.findings
    out_values: list[JSONValue] = [
        v for v in kept or () if isinstance(v, str) and len(v) <= MAX_COMPLETION_CHARS
    ]
    if values == out_values:
        return Sanitised(completion, findings)
    out: JSONObject = {**completion, "values": out_values}
    if more:
        out["hasMore"] = True
    return Sanitised(out, findings)


def _text(text: str, path: str, sanitiser: Sanitiser, findings: list[Finding]) -> str | None:
    """``text`` cleaned like an error message (None: blocked)."""
    cleaned = sanitiser.text(text, path)
    findings.extend(cleaned.findings)
    if cleaned.blocked or not isinstance(cleaned.value, str):
        return None
    out = mask_internal_urls(cleaned.value, findings, path)
    if not isinstance(out, str):
        return None
    return out if len(out) <= MAX_MESSAGE else out[:MAX_MESSAGE] + "…"
