"""Workspace files and collaboration channels as MCP resources.

URI scheme (documented in the README):

* ``workspace://{workspace}/{+path}``: a file; ``path`` is the workspace path with each
  segment percent-encoded (RFC 3986), e.g. ``workspace://demo/src/caf%C3%A9.py``. Reading
  goes through the same confinement as ``read_file``; text comes back as ``text``, other
  bytes as ``blob``; ``_meta`` carries the version token.
* ``workspace-meta://{workspace}/changes``, ``/members``, ``/messages``: the change log,
  the members and locks, and recent broadcasts, as JSON. Updated on every change.

Subscribing to a file's URI (before it exists, too) brings ``resources/updated`` when any
agent writes, edits, moves or deletes it; subscribing to ``.../changes`` brings one for
every change in the workspace. ``resources/list`` shows the channels of each workspace
(files are found with ``list_files``), and changes when a workspace is created.
"""

from __future__ import annotations

import base64
import mimetypes
import re
from typing import TYPE_CHECKING, Final
from urllib.parse import quote, unquote

import msgspec

from bastion._types import JSONObject
from bastion.errors import InvalidParams, ResourceNotFound
from bastion.protocol import types as t
from bastion.protocol.versions import Era
from bastion.server.registry import ResourceEntry, ServerApp, TemplateEntry
from bastion.workspace import jail
from bastion.workspace.errors import InvalidInput, NotFound, WorkspaceError
from bastion.workspace.paths import RelPath, parse_path

if TYPE_CHECKING:
    from bastion.server.context import ToolContext
    from bastion.workspace.server import WorkspaceServer

__all__ = ["CHANNELS", "META_SCHEME", "SCHEME", "decode_text", "file_uri", "install", "meta_uri"]

SCHEME: Final = "workspace"
META_SCHEME: Final = "workspace-meta"
CHANNELS: Final = ("changes", "members", "messages")
RECENT_CHANGES: Final = 200  # entries in the changes resource; list_changes pages further
_FILE_URI: Final = re.compile(r"workspace://(?P<workspace>[^/?#]+)/(?P<path>[^?#]*)")
_META_URI: Final = re.compile(
    r"workspace-meta://(?P<workspace>[^/?#]+)/(?P<channel>changes|members|messages)"
)
_JSON: Final = "application/json"
_ENCODED_SPECIAL: Final = re.compile(r"%(2[fFeE]|5[cC])")


def file_uri(workspace: str, rel: RelPath) -> str:
    return f"{SCHEME}://{workspace}/{quote(rel.text, safe='/')}"


def meta_uri(workspace: str, channel: str) -> str:
    return f"{META_SCHEME}://{workspace}/{channel}"


def decode_text(data: bytes) -> str | None:
    """The bytes as text, or None when they are binary (not UTF-8, or holding a NUL)."""
    if b"\x00" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def install(app: ServerApp, server: WorkspaceServer) -> None:
    """Add the workspace templates to a connection's app, and keep its list current."""

    async def read_file(ctx: ToolContext, uri: str, found: dict[str, str]) -> list[JSONObject]:
        try:
            ws = server.root.get(found["workspace"])
            if _ENCODED_SPECIAL.search(found["path"]):
                # SECURITY.md IN-4: a separator or dot is written as itself, never encoded.
                raise InvalidInput("the URI encodes '/', '\\' or '.'; write them plainly")
            try:
                raw = unquote(found["path"], errors="strict")
            except UnicodeDecodeError:
                raise InvalidInput("the path in the URI is not UTF-8") from None
            rel = parse_path(raw)
            data = await server.in_workspace(ws, jail.read_file, rel, server.limits.max_read_bytes)
        except WorkspaceError as exc:
            raise _resource_error(exc, ctx, uri) from None
        mime = mimetypes.guess_type(rel.name)[0]
        meta = {"bastion.dev/version": data.version}
        text = decode_text(data.data)
        if text is None:
            blob = base64.b64encode(data.data).decode()
            return [
                {
                    "uri": uri,
                    "mimeType": mime or "application/octet-stream",
                    "blob": blob,
                    "_meta": meta,
                }
            ]
        return [{"uri": uri, "mimeType": mime or "text/plain", "text": text, "_meta": meta}]

    async def read_meta(ctx: ToolContext, uri: str, found: dict[str, str]) -> list[JSONObject]:
        try:
            ws = server.root.get(found["workspace"])
        except WorkspaceError as exc:
            raise _resource_error(exc, ctx, uri) from None
        collab = ws.collab
        collab.prune()
        body: JSONObject
        if found["channel"] == "changes":
            body = {"changes": [c.to_json() for c in list(collab.changes)[-RECENT_CHANGES:]]}
        elif found["channel"] == "members":
            members = [m.to_json() for m in collab.members.values()]
            body = {"members": members, "locks": collab.lock_list()}
        else:
            body = {"messages": [m.to_json(ws.name) for m in collab.messages]}
        body["workspace"] = ws.name
        return [{"uri": uri, "mimeType": _JSON, "text": msgspec.json.encode(body).decode()}]

    app.templates.append(
        TemplateEntry(
            t.ResourceTemplate(
                uriTemplate=f"{SCHEME}://{{workspace}}/{{+path}}",
                name="workspace-file",
                title="A file in a workspace",
                description="Subscribe to hear when any agent changes it.",
            ),
            read_file,
            _FILE_URI,
        )
    )
    app.templates.append(
        TemplateEntry(
            t.ResourceTemplate(
                uriTemplate=f"{META_SCHEME}://{{workspace}}/{{channel}}",
                name="workspace-channel",
                title="A workspace's changes, members or messages",
                description="channel is changes, members or messages (JSON).",
                mimeType=_JSON,
            ),
            read_meta,
            _META_URI,
        )
    )

    async def refresh() -> None:
        # Called by the core before it answers a list: list each workspace's channels.
        names = server.root.listed()
        app.resources = {
            meta_uri(name, channel): ResourceEntry(
                t.Resource(
                    uri=meta_uri(name, channel),
                    name=f"{name}-{channel}",
                    description=f"The {channel} of workspace {name}",
                    mimeType=_JSON,
                ),
                read_meta_static,
                subscribable=True,
            )
            for name in names
            for channel in CHANNELS
        }

    async def read_meta_static(
        ctx: ToolContext, uri: str, found: dict[str, str]
    ) -> list[JSONObject]:
        match = _META_URI.fullmatch(uri)
        if match is None:  # the keys of app.resources are our own URIs
            raise InvalidParams("not a workspace channel", message="Resource not found")
        return await read_meta(ctx, uri, match.groupdict())

    app.settle_hook = refresh


def _resource_error(exc: WorkspaceError, ctx: ToolContext, uri: str) -> Exception:
    # Our messages are built from validated names and paths only (see errors.py).
    if isinstance(exc, NotFound):
        # 2025-11-25 says -32002; 2026-07-28 (SEP-2164) moved it to -32602.
        kind = ResourceNotFound if ctx.era is Era.LEGACY else InvalidParams
        return kind(exc.message, data={"uri": uri}, message=f"Resource not found: {exc.message}")
    return InvalidParams(exc.message, data={"uri": uri}, message=f"{exc.kind}: {exc.message}")
