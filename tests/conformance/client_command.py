"""The client command the official conformance suite drives (``conformance client --command``).

It is Bastion's client face (``ClientSession`` over ``HttpClientStream``) plus, per scenario,
the calls the scenario expects. The era comes from ``MCP_CONFORMANCE_PROTOCOL_VERSION``
(unset or a 2025 version: 2025-11-25 with initialize; otherwise 2026-07-28). OAuth scenarios
(``auth/*``) need upstream authentication, a later issue, and exit 2 at once.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import anyio

from bastion.client import ClientHandlers, ClientSession
from bastion.protocol.versions import LEGACY_VERSIONS, Era
from bastion.transport.http_client import HttpClientStream

JSON = dict[str, Any]
_TYPE_DEFAULTS: dict[str, Any] = {"string": "", "integer": 0, "number": 0, "boolean": True}


def form_defaults(schema: JSON) -> JSON:
    """An elicitation answer: each field's default, else its enum's first value, else a
    neutral value of its type."""
    content: JSON = {}
    for name, prop in (schema.get("properties") or {}).items():
        if not isinstance(prop, dict):
            continue
        if "default" in prop:
            content[name] = prop["default"]
        elif prop.get("enum"):
            content[name] = prop["enum"][0]
        elif prop.get("type") in _TYPE_DEFAULTS:
            content[name] = _TYPE_DEFAULTS[prop["type"]]
    return content


async def elicit(params: JSON) -> JSON:
    return {"action": "accept", "content": form_defaults(params.get("requestedSchema") or {})}


async def sample(params: JSON) -> JSON:
    return {
        "role": "assistant",
        "content": {"type": "text", "text": "Hello from the client"},
        "model": "bastion-conformance",
        "stopReason": "endTurn",
    }


async def roots(params: JSON) -> JSON:
    return {"roots": [{"uri": "file:///tmp/bastion-conformance", "name": "conformance"}]}


def example_arguments(tool: JSON) -> JSON:
    args: JSON = {}
    schema = tool.get("inputSchema") or {}
    for name in schema.get("required") or []:
        prop = (schema.get("properties") or {}).get(name) or {}
        kind = prop.get("type")
        args[name] = {"string": "us-west1", "integer": 1, "number": 1, "boolean": True}.get(
            kind, "x"
        )
    return args


async def run(session: ClientSession, scenario: str, context: JSON) -> None:
    tools = await session.list_tools()
    names = [str(t.get("name")) for t in tools]
    if scenario == "tools_call":
        await session.call_tool("add_numbers", {"a": 2, "b": 3})
    elif scenario == "elicitation-sep1034-client-defaults":
        await session.call_tool("test_client_elicitation_defaults")
    elif scenario == "sse-retry":
        await session.call_tool("test_reconnection")
    elif scenario == "sep-2322-client-request-state":
        await session.call_tool("test_mrtr_echo_state")
        await session.call_tool("test_mrtr_no_state")
        await session.call_tool("test_mrtr_no_result_type")
    elif scenario == "http-standard-headers":
        for name in names:
            await session.call_tool(name)
        resources = await session.list_all("resources/list", "resources")
        if resources:
            await session.read_resource(str(resources[0]["uri"]))
        for prompt in await session.list_all("prompts/list", "prompts"):
            await session.get_prompt(str(prompt["name"]))
    elif scenario == "http-custom-headers":
        for call in context.get("toolCalls") or []:
            await session.call_tool(call["name"], call.get("arguments") or {})
    elif scenario == "http-invalid-tool-headers":
        for tool in tools:  # list_tools already dropped the ones with invalid annotations
            await session.call_tool(str(tool["name"]), example_arguments(tool))
    elif scenario == "json-schema-2020-12-preservation":
        focal = next((t for t in tools if t.get("name") == "json_schema_2020_12_tool"), None)
        if focal is not None and "json_schema_echo" in names:
            await session.call_tool("json_schema_echo", {"schema": focal["inputSchema"]})


async def main(url: str) -> int:
    scenario = os.environ.get("MCP_CONFORMANCE_SCENARIO", "")
    if scenario.startswith("auth/"):
        print(f"{scenario}: OAuth client flows are not implemented yet", file=sys.stderr)
        return 2
    version = os.environ.get("MCP_CONFORMANCE_PROTOCOL_VERSION") or "2025-11-25"
    legacy = version in LEGACY_VERSIONS
    context = json.loads(os.environ.get("MCP_CONFORMANCE_CONTEXT") or "{}")
    handlers = ClientHandlers(elicitation=elicit, sampling=sample, roots=roots)
    async with HttpClientStream(url) as stream:
        session = ClientSession(
            stream,
            client_name="bastion-conformance-client",
            handlers=handlers,
            era=Era.LEGACY if legacy else Era.MODERN,
            legacy_version=version if legacy else "2025-11-25",
            request_timeout=20,
        )
        async with session:
            if scenario == "sep-2322-client-request-state":
                # Isolation: a plain call made while an input round is open must carry no state.
                async def elicit_then_unrelated(params: JSON) -> JSON:
                    await session.call_tool("test_mrtr_unrelated")
                    return await elicit(params)

                handlers.elicitation = elicit_then_unrelated
            await session.connect()
            await run(session, scenario, context)
    return 0


if __name__ == "__main__":
    sys.exit(anyio.run(main, sys.argv[-1]))
