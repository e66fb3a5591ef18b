"""The reading tools: workspaces by name, then read, list and search files.

Every path goes through ``paths.parse_path`` and then ``jail``/``tree`` (descriptor
walking), so nothing outside the workspace can be read or listed.
"""

from __future__ import annotations

import base64
from typing import Annotated, Final

from msgspec import Meta

from bastion.workspace import jail, tree
from bastion.workspace.invocation import Invocation
from bastion.workspace.paths import parse_path
from bastion.workspace.resources import decode_text, file_uri
from bastion.workspace.toolkit import (
    BOOLEAN,
    INTEGER,
    OBJECTS,
    STRING,
    VERSIONED,
    Args,
    DirArg,
    PathArg,
    Reply,
    ToolSpec,
    WorkspaceName,
    output_schema,
    tool_spec,
)

__all__ = ["SPECS"]


# -- workspaces ------------------------------------------------------------------------


class CreateArgs(Args, frozen=True):
    name: WorkspaceName


async def create_workspace(inv: Invocation, a: CreateArgs) -> Reply:
    ws = inv.server.root.create(a.name, inv.principal)
    await inv.server.list_changed("resources")
    return Reply(f"Created workspace {ws.name}.", {"workspace": ws.name})


class NoArgs(Args, frozen=True):
    pass


async def list_workspaces(inv: Invocation, a: NoArgs) -> Reply:
    names = inv.server.root.listed()
    rows = [{"name": name, "members": len(inv.workspace(name).collab.members)} for name in names]
    text = "\n".join(f"{r['name']} ({r['members']} members)" for r in rows) or "No workspaces."
    return Reply(text, {"workspaces": rows})


# -- reading ---------------------------------------------------------------------------


class ReadArgs(Args, frozen=True):
    workspace: WorkspaceName
    path: PathArg


async def read_file(inv: Invocation, a: ReadArgs) -> Reply:
    ws, rel = inv.workspace(a.workspace), parse_path(a.path)
    data = await inv.fs(ws, jail.read_file, rel, inv.server.limits.max_read_bytes)
    text = decode_text(data.data)
    encoding = "utf-8" if text is not None else "base64"
    if text is None:
        text = base64.b64encode(data.data).decode()
    info = {
        "path": rel.text,
        "uri": file_uri(ws.name, rel),
        "version": data.version,
        "size": len(data.data),
        "encoding": encoding,
    }
    return Reply(text, info)


class ListArgs(Args, frozen=True):
    workspace: WorkspaceName
    path: DirArg = "."
    recursive: bool = False


async def list_files(inv: Invocation, a: ListArgs) -> Reply:
    ws, rel = inv.workspace(a.workspace), parse_path(a.path, allow_root=True)
    cap = inv.server.limits.max_list_entries
    found = await inv.fs(ws, tree.listing, rel, recursive=a.recursive, cap=cap)
    entries = [{"path": e.path, "type": e.type, "size": e.size} for e in found.entries]
    lines = [f"{e['path']}{'/' if e['type'] == 'dir' else ''}" for e in entries]
    if found.truncated:
        lines.append(f"... (stopped at {cap} entries)")
    return Reply("\n".join(lines) or "(empty)", {"entries": entries, "truncated": found.truncated})


class SearchArgs(Args, frozen=True):
    workspace: WorkspaceName
    query: Annotated[str, Meta(min_length=1, max_length=1000, description="plain text")]
    path: DirArg = "."
    ignore_case: bool = False


async def search(inv: Invocation, a: SearchArgs) -> Reply:
    ws, rel = inv.workspace(a.workspace), parse_path(a.path, allow_root=True)
    limits = inv.server.limits
    found = await inv.fs(
        ws,
        tree.search,
        rel,
        a.query,
        ignore_case=a.ignore_case,
        max_hits=limits.max_search_results,
        max_files=limits.max_search_files,
        max_file_bytes=limits.max_search_file_bytes,
    )
    matches = [{"path": h.path, "line": h.line, "text": h.text} for h in found.hits]
    lines = [f"{m['path']}:{m['line']}: {m['text']}" for m in matches]
    if found.truncated:
        lines.append("... (more matches not shown)")
    structured = {
        "matches": matches,
        "truncated": found.truncated,
        "files_searched": found.files_searched,
    }
    return Reply("\n".join(lines) or "No matches.", structured)


SPECS: Final[tuple[ToolSpec, ...]] = (
    tool_spec(
        "create_workspace",
        "Create a new, empty workspace.",
        CreateArgs,
        create_workspace,
        output=output_schema({"workspace": STRING}, "workspace"),
    ),
    tool_spec(
        "list_workspaces",
        "List the workspaces and how many members each has.",
        NoArgs,
        list_workspaces,
        output=output_schema({"workspaces": OBJECTS}, "workspaces"),
        read_only=True,
    ),
    tool_spec(
        "read_file",
        "Read a file. The text is the content (base64 if binary); the structured result "
        "has its version: pass it as expected_version to write_file or edit_file.",
        ReadArgs,
        read_file,
        read_only=True,
        output=output_schema(
            {**VERSIONED, "encoding": STRING}, "path", "uri", "version", "size", "encoding"
        ),
    ),
    tool_spec(
        "list_files",
        "List a directory (recursive lists the whole tree, bounded).",
        ListArgs,
        list_files,
        read_only=True,
        output=output_schema({"entries": OBJECTS, "truncated": BOOLEAN}, "entries", "truncated"),
    ),
    tool_spec(
        "search",
        "Search text files for a plain-text string (not a regex); bounded results.",
        SearchArgs,
        search,
        read_only=True,
        output=output_schema(
            {"matches": OBJECTS, "truncated": BOOLEAN, "files_searched": INTEGER},
            "matches",
            "truncated",
            "files_searched",
        ),
    ),
)
