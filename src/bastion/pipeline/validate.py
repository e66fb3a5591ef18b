"""The validate stage (IN-3, IN-4): a tool call's arguments must satisfy the tool's
``inputSchema`` (unknown fields refused unless the schema allows them) before anything is
forwarded, and a resource URI must pass the confinement rules before it is routed; so must
every URI a ``subscriptions/listen`` asks to follow (one refused refuses the request).
"""

from __future__ import annotations

from bastion._types import JSONValue
from bastion.errors import InvalidParams
from bastion.guard.schemas import SchemaUnusable
from bastion.guard.uris import UriPolicy, UriRefused
from bastion.pipeline.exchange import Exchange
from bastion.pipeline.stage import Handler
from bastion.pipeline.tool_schemas import ToolSchemas
from bastion.server.registry import ServerApp

__all__ = ["ValidateStage"]

_URI_METHODS = frozenset({"resources/read", "resources/subscribe", "resources/unsubscribe"})


class ValidateStage:
    name = "validate"

    def __init__(self, app: ServerApp, schemas: ToolSchemas | None, uris: UriPolicy) -> None:
        self._app = app
        self._schemas = schemas
        self._uris = uris

    async def __call__(self, exchange: Exchange, proceed: Handler) -> JSONValue:
        method, target = exchange.method, exchange.target
        if method == "tools/call" and target is not None and self._schemas is not None:
            entry = self._app.tools.get(target.name)
            if entry is not None:  # an unknown tool is the MCP layer's to refuse
                try:
                    compiled = self._schemas.compiled(entry.tool, "inputSchema")
                    if compiled is not None:
                        compiled.check_arguments(exchange.arguments)
                except SchemaUnusable as exc:
                    raise InvalidParams(
                        f"unusable inputSchema: {exc.reason}", message="Tool unavailable"
                    ) from exc
        elif method in _URI_METHODS and target is not None:
            self._uris.check(target.name)
        for subscription in exchange.subscriptions:
            try:
                self._uris.check(subscription.name)
            except UriRefused:
                exchange.target = subscription  # the audit record names the refused URI
                raise
        return await proceed(exchange)
