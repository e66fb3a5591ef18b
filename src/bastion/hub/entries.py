"""The hub's own entries, as a client sees them: the definitions of its three tools
(``instances_list``, ``instances_connect``, ``instances_disconnect``), an instance's public
fields (never its credential) and its resource (``bastion-hub://instances/<id>``), and the
upstream name an instance is mounted under (``mount_name``).

Registry text is the instance owner's, not ours: a name or project path reaches a client
with printable characters only and bounded in length, and a resource the poison screen
flags shows only the instance id (TC-1). Mount names never share a URI scheme (TC-3).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Final

import msgspec

from bastion._types import JSONObject
from bastion.catalog.names import server_scheme
from bastion.guard import PoisonScanner
from bastion.hub.registry import InstanceRecord
from bastion.protocol import types as t
from bastion.server.context import ToolContext
from bastion.server.registry import ResourceEntry

__all__ = [
    "CONNECT_TOOL",
    "DISCONNECT_TOOL",
    "LIST_TOOL",
    "MAX_SHOWN",
    "URI_PREFIX",
    "failure",
    "instance_uri",
    "mount_name",
    "public",
    "resource_entry",
]

MAX_SHOWN: Final = 200  # characters of an instance's name or project in a list entry
_SCANNER: Final = PoisonScanner()
URI_PREFIX: Final = "bastion-hub://instances/"
_UNSAFE: Final = re.compile(r"[^A-Za-z0-9_-]+")
_NAME_MAX: Final = 40

_INSTANCE_ARG: Final[JSONObject] = {
    "type": "object",
    "properties": {
        "instance": {
            "type": "string",
            "description": "The instance's id or name, as instances_list shows them",
            "maxLength": 200,
        }
    },
    "required": ["instance"],
    "additionalProperties": False,
}
_INSTANCE_FIELDS: Final[JSONObject] = {
    "id": {"type": "string"},
    "name": {"type": "string"},
    "project": {"type": "string"},
    "url": {"type": "string"},
    "port": {"type": "integer"},
    "pid": {"type": "integer"},
    "startedAt": {"type": "string"},
    "protocolVersions": {"type": "array", "items": {"type": "string"}},
    "state": {"type": "string"},
    "connected": {"type": "boolean"},
    "prefix": {"type": ["string", "null"]},
}


def mount_name(instance_name: str, taken: set[str]) -> str:
    """The upstream name an instance gets (its tools become ``<name>__<tool>``): its own
    name reduced to ``[A-Za-z0-9_-]``, with ``_2``, ``_3``... when that, or its URI scheme
    form, is taken."""
    base = _UNSAFE.sub("_", instance_name).strip("_")[:_NAME_MAX] or "instance"
    # Resource URIs are prefixed by the name's scheme form (lower case, ``_`` as ``.``):
    # ``Dev`` and ``dev`` would share ``dev+``, and one would serve the other's URIs (TC-3).
    schemes = {server_scheme(other) for other in taken}
    name, n = base, 1
    while name in taken or server_scheme(name) in schemes:
        n += 1
        name = f"{base}_{n}"
    return name


def instance_uri(record: InstanceRecord) -> str:
    return f"{URI_PREFIX}{record.id}"


def public(record: InstanceRecord) -> JSONObject:
    """What a client may see of an instance (never its credential)."""
    return {
        "id": record.id,
        "name": _shown(record.name),
        "project": _shown(record.project),
        "url": record.url,
        "port": record.port,
        "pid": record.pid,
        "startedAt": _iso(record.started_at),
        "protocolVersions": list(record.protocol_versions),
    }


def resource_entry(record: InstanceRecord) -> ResourceEntry:
    body = msgspec.json.encode(public(record)).decode()

    async def read(ctx: ToolContext, uri: str, params: dict[str, str]) -> list[JSONObject]:
        return [{"uri": uri, "mimeType": "application/json", "text": body}]

    resource = t.Resource(
        uri=instance_uri(record),
        name=f"instance {_shown(record.name)}",
        mimeType="application/json",
        description=f"A running MCP instance in {_shown(record.project)}",
    )
    if _SCANNER.scan_resource(resource):  # TC-1: a name or path that reads as an instruction
        resource = t.Resource(
            uri=instance_uri(record),
            name=f"instance {record.id}",
            mimeType="application/json",
            description="A running MCP instance (its name or project path was withheld)",
        )
    return ResourceEntry(resource, read)


def _shown(text: str) -> str:
    """Registry text as a client sees it in a list: printable characters only (no escapes,
    line breaks, bidi or zero-width characters: TC-1), at most ``MAX_SHOWN`` of them."""
    kept = "".join(ch for ch in text if ch.isprintable())
    return kept if len(kept) <= MAX_SHOWN else kept[: MAX_SHOWN - 3] + "..."


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds")


def failure(message: str) -> t.CallToolResult:
    return t.CallToolResult(content=[t.TextContent(text=message)], isError=True)


LIST_TOOL: Final = t.Tool(
    name="instances_list",
    description=(
        "List the MCP instances running on this machine (name, project path, URL, port, pid, "
        "start time, state, and whether you are connected)."
    ),
    inputSchema={"type": "object", "properties": {}, "additionalProperties": False},
    outputSchema={
        "type": "object",
        "properties": {
            "instances": {
                "type": "array",
                "items": {"type": "object", "properties": _INSTANCE_FIELDS},
            }
        },
        "required": ["instances"],
    },
    annotations={"readOnlyHint": True, "openWorldHint": False},
)
CONNECT_TOOL: Final = t.Tool(
    name="instances_connect",
    description=(
        "Connect to a running instance by id or name: its tools, resources and prompts "
        "appear under the prefix this returns (e.g. myproject__tool)."
    ),
    inputSchema=_INSTANCE_ARG,
    annotations={"readOnlyHint": False, "openWorldHint": False},
)
DISCONNECT_TOOL: Final = t.Tool(
    name="instances_disconnect",
    description="Disconnect from an instance (by id, name or prefix); its tools disappear.",
    inputSchema=_INSTANCE_ARG,
    annotations={"readOnlyHint": False, "openWorldHint": False},
)
