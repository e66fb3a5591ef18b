"""The sanitise stage (TC-4, IN-3, AD-3): what comes back from an upstream is untrusted.

Tool results, resource contents and prompts are filtered (secrets masked, invisible and bidi
characters stripped, length capped, likely prompt injection annotated or blocked), and a tool
result's ``structuredContent`` must satisfy the tool's ``outputSchema``; one that does not is
replaced by an error result (the upstream is at fault, not the client). What was found is
counted into the audit record, never quoted.
"""

from __future__ import annotations

import logging
from collections import Counter

from bastion._types import JSONObject, JSONValue
from bastion.errors import Denied
from bastion.guard.sanitise import Sanitised, Sanitiser
from bastion.guard.schemas import SchemaUnusable
from bastion.pipeline.exchange import Exchange
from bastion.pipeline.stage import Handler
from bastion.pipeline.tool_schemas import ToolSchemas
from bastion.server.registry import ServerApp

__all__ = ["OUTPUT_MISMATCH", "SanitiseStage"]

logger = logging.getLogger(__name__)

OUTPUT_MISMATCH = "The tool's result did not match its output schema"


class SanitiseStage:
    name = "sanitise"

    def __init__(
        self, app: ServerApp, sanitiser: Sanitiser | None, output: ToolSchemas | None
    ) -> None:
        self._app = app
        self._sanitiser = sanitiser
        self._output = output

    async def __call__(self, exchange: Exchange, proceed: Handler) -> JSONValue:
        result = await proceed(exchange)
        if not isinstance(result, dict):
            return result
        method = exchange.method
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
        return result

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
        if cleaned.findings:
            counts = Counter(finding.kind for finding in cleaned.findings)
            # A list of {kind, count}, not a mapping by kind: the audit log redacts the value
            # of any key named like a credential, and one kind is literally "secret".
            exchange.detail["findings"] = [
                {"kind": kind, "count": n} for kind, n in sorted(counts.items())
            ]
        if cleaned.blocked and exchange.method != "tools/call":
            raise Denied("result blocked by the content filter", message="Content blocked")
        return cleaned.value
