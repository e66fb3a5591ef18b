"""The sanitise stage (TC-4, IN-3, AD-3): what comes back from an upstream is untrusted.

Tool results, resource contents, prompts and completion values are filtered (secrets masked,
invisible and bidi characters stripped, length capped, likely prompt injection annotated or
blocked), and a tool result's ``structuredContent`` must satisfy the tool's
``outputSchema``; one that does not is replaced by an error result (the upstream is at fault,
not the client). What the upstream says besides its answer is cleaned even when result
filtering is off: an error answer (``guard.peer_errors``: secrets, the gateway's own
configured upstream credentials and internal URLs masked, UP-4), and what reaches the client
while the request runs (``RelayedCall``: sampling and elicitation requests, sent in a
2025-11-25 session or carried by a 2026-07-28 input-required result, log lines and progress
messages). Completion values are capped at the spec's 100 either way. What was found is
counted into the audit record, never quoted.
"""

from __future__ import annotations

import functools
import logging
from collections import Counter
from collections.abc import Iterable

from bastion._types import JSONObject, JSONValue
from bastion.errors import Denied, PeerError
from bastion.guard.findings import Finding
from bastion.guard.peer_errors import clean_peer_error
from bastion.guard.relays import clean_completion, clean_input_requests
from bastion.guard.sanitise import BLOCKED_TEXT, Sanitised, Sanitiser
from bastion.guard.schemas import SchemaUnusable
from bastion.pipeline.exchange import Exchange
from bastion.pipeline.relay import CONTENT_BLOCKED, RelayedCall
from bastion.pipeline.stage import Handler
from bastion.pipeline.tool_schemas import ToolSchemas
from bastion.server.registry import ServerApp

__all__ = ["OUTPUT_MISMATCH", "SanitiseStage"]

logger = logging.getLogger(__name__)

OUTPUT_MISMATCH = "The tool's result did not match its output schema"


class SanitiseStage:
    name = "sanitise"

    def __init__(
        self,
        app: ServerApp,
        sanitiser: Sanitiser | None,
        output: ToolSchemas | None,
        *,
        always: Sanitiser | None = None,
    ) -> None:
        """``always`` cleans errors and what is relayed mid-call even with result filtering
        off (``sanitiser`` None); by default ``sanitiser``, or a default ``Sanitiser``."""
        self._app = app
        self._sanitiser = sanitiser
        self._always = always or sanitiser or Sanitiser()
        self._output = output

    async def __call__(self, exchange: Exchange, proceed: Handler) -> JSONValue:
        # The relay records into the exchange's detail, not through the exchange: the
        # exchange holds the relay, and a cycle per request would leave every request's
        # objects to the garbage collector (measured: a ~7 ms young collection every ~360
        # calls at 16 clients).
        exchange.call = RelayedCall(
            exchange.call, self._always, functools.partial(_count, exchange.detail)
        )
        try:
            result = await proceed(exchange)
        except PeerError as error:
            cleaned, findings = clean_peer_error(error, self._always)
            _count(exchange.detail, findings)
            raise cleaned from None
        if not isinstance(result, dict):
            return result
        method = exchange.method
        if result.get("resultType") == "input_required":
            return self._input_required(exchange, result)
        if method == "tools/call":
            result = self._check_output(exchange, result)
            if self._sanitiser is not None:
                result = self._record(exchange, self._sanitiser.tool_result(result))
        elif self._sanitiser is not None and method == "resources/read":
            contents = result.get("contents")
            if isinstance(contents, list):
                cleaned = self._record(exchange, self._sanitiser.resource_contents(contents))
                result = {**result, "contents": cleaned}
        elif self._sanitiser is not None and method == "prompts/get":
            result = self._record(exchange, self._sanitiser.prompt_result(result))
        elif method == "completion/complete":
            completion = result.get("completion")
            if isinstance(completion, dict):
                cleaned = self._record(exchange, clean_completion(completion, self._sanitiser))
                result = {**result, "completion": cleaned}
        return result

    def _input_required(self, exchange: Exchange, result: JSONObject) -> JSONValue:
        """A 2026-07-28 input-required result: its questions are filtered like those sent
        in a 2025-11-25 session; a blocked one is a blocked result (or a refusal)."""
        cleaned = clean_input_requests(result.get("inputRequests"), self._always)
        _count(exchange.detail, cleaned.findings)
        if cleaned.blocked and exchange.method == "tools/call":
            return {"content": [{"type": "text", "text": BLOCKED_TEXT}], "isError": True}
        if cleaned.blocked:
            raise Denied("input request blocked by the content filter", message=CONTENT_BLOCKED)
        if not cleaned.changed:
            return result
        return {**result, "inputRequests": cleaned.value}

    def _check_output(self, exchange: Exchange, result: JSONObject) -> JSONObject:
        target = exchange.target
        if self._output is None or target is None or result.get("isError") is True:
            return result
        entry = self._app.tools.get(target.name)
        if entry is None:
            return result
        try:
            compiled = self._output.compiled(entry.tool, "outputSchema")
            if compiled is None or not compiled.violations(result.get("structuredContent")):
                return result
        except SchemaUnusable:
            pass  # an unusable outputSchema cannot vouch for the result either
        logger.warning("%s returned a result outside its outputSchema", target.name)
        exchange.detail["outputSchema"] = "mismatch"
        return {"content": [{"type": "text", "text": OUTPUT_MISMATCH}], "isError": True}

    def _record(self, exchange: Exchange, cleaned: Sanitised) -> JSONValue:
        _count(exchange.detail, cleaned.findings)
        if cleaned.blocked and exchange.method != "tools/call":
            raise Denied("result blocked by the content filter", message=CONTENT_BLOCKED)
        return cleaned.value


def _count(detail: JSONObject, findings: Iterable[Finding]) -> None:
    """Add ``findings`` to the counts in an exchange's ``detail`` (relayed messages, then
    the result)."""
    counts: Counter[str] = Counter(finding.kind for finding in findings)
    if not counts:
        return
    earlier = detail.get("findings")
    for item in earlier if isinstance(earlier, list) else ():
        if isinstance(item, dict) and isinstance(n := item.get("count"), int):
            counts[str(item.get("kind"))] += n
    # A list of {kind, count}, not a mapping by kind: the audit log redacts the value
    # of any key named like a credential, and one kind is literally "secret".
    detail["findings"] = [{"kind": kind, "count": n} for kind, n in sorted(counts.items())]
