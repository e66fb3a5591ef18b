"""The changing tools: write, edit, delete and move files.

Every change holds the workspace's writer lock (so a version check and its write are not
interleaved with another agent's), is refused if another agent holds an advisory lock on
the path, is recorded in the change log with the agent who made it, and is announced to
the subscribers of the touched files and of the change log.
"""

from __future__ import annotations

import base64
import binascii
from typing import Final, Literal

from bastion.workspace import jail, tree
from bastion.workspace.collab import Agent
from bastion.workspace.edits import edit_file as edit_text
from bastion.workspace.errors import InvalidInput, TooLarge
from bastion.workspace.invocation import Invocation
from bastion.workspace.paths import RelPath, parse_path
from bastion.workspace.resources import file_uri, meta_uri
from bastion.workspace.store import Workspace
from bastion.workspace.toolkit import (
    BOOLEAN,
    INTEGER,
    STRING,
    VERSIONED,
    Args,
    PathArg,
    Reply,
    Token,
    ToolSpec,
    Version,
    WorkspaceName,
    output_schema,
    tool_spec,
)

__all__ = ["SPECS"]


async def announce(inv: Invocation, ws: Workspace, *touched: RelPath) -> None:
    uris = [file_uri(ws.name, rel) for rel in touched]
    await inv.server.updated([*uris, meta_uri(ws.name, "changes")])


def guard(inv: Invocation, ws: Workspace, agent: Agent, *paths: RelPath) -> None:
    """Refuse a change to a path another agent locked or the caller's role may not change."""
    member = ws.collab.members.get(agent.id)
    name = member.agent.name if member is not None else None
    for rel in paths:
        ws.collab.check_unlocked(rel, agent)
        inv.server.runner.policy.check_writable(ws.name, name, rel)


# -- changing --------------------------------------------------------------------------


class WriteArgs(Args, frozen=True):
    workspace: WorkspaceName
    path: PathArg
    content: str
    encoding: Literal["utf-8", "base64"] = "utf-8"
    expected_version: Version | None = None
    mode: Literal["overwrite", "create"] = "overwrite"
    make_dirs: bool = True
    member_token: Token | None = None


async def write_file(inv: Invocation, a: WriteArgs) -> Reply:
    ws, rel = inv.workspace(a.workspace), parse_path(a.path)
    data = _content(a.content, a.encoding)
    cap = inv.server.limits.max_write_bytes
    if len(data) > cap:
        raise TooLarge(f"content is {len(data)} bytes; the limit is {cap}")
    agent = inv.agent(ws, a.member_token)
    async with ws.writer:
        guard(inv, ws, agent, rel)
        outcome = await inv.fs(
            ws,
            jail.write_file,
            rel,
            data,
            expected_version=a.expected_version,
            create_only=a.mode == "create",
            make_dirs=a.make_dirs,
            size_cap=cap,
        )
        op = "create" if outcome.created else "write"
        ws.collab.record(agent, op, rel.text, version=outcome.version)
    await announce(inv, ws, rel)
    verb = "Created" if outcome.created else "Wrote"
    return Reply(
        f"{verb} {rel.text} ({outcome.size} bytes, version {outcome.version}).",
        {
            "path": rel.text,
            "uri": file_uri(ws.name, rel),
            "version": outcome.version,
            "size": outcome.size,
            "created": outcome.created,
        },
    )


def _content(content: str, encoding: str) -> bytes:
    if encoding == "utf-8":
        try:
            return content.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidInput("content is not valid Unicode (lone surrogate)") from None
    try:
        return base64.b64decode(content, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput("content is not valid base64") from None


class EditArgs(Args, frozen=True):
    workspace: WorkspaceName
    path: PathArg
    old_text: str
    new_text: str
    replace_all: bool = False
    expected_version: Version | None = None
    member_token: Token | None = None


async def edit_file(inv: Invocation, a: EditArgs) -> Reply:
    ws, rel = inv.workspace(a.workspace), parse_path(a.path)
    agent = inv.agent(ws, a.member_token)
    async with ws.writer:
        guard(inv, ws, agent, rel)
        outcome = await inv.fs(
            ws,
            edit_text,
            rel,
            a.old_text,
            a.new_text,
            replace_all=a.replace_all,
            expected_version=a.expected_version,
            size_cap=inv.server.limits.max_write_bytes,
        )
        version = outcome.write.version
        ws.collab.record(agent, "edit", rel.text, version=version)
    await announce(inv, ws, rel)
    return Reply(
        f"Edited {rel.text}: {outcome.replacements} replacement(s), version {version}.",
        {
            "path": rel.text,
            "uri": file_uri(ws.name, rel),
            "version": version,
            "size": outcome.write.size,
            "replacements": outcome.replacements,
        },
    )


class DeleteArgs(Args, frozen=True):
    workspace: WorkspaceName
    path: PathArg
    recursive: bool = False
    member_token: Token | None = None


async def delete_file(inv: Invocation, a: DeleteArgs) -> Reply:
    ws, rel = inv.workspace(a.workspace), parse_path(a.path)
    agent = inv.agent(ws, a.member_token)
    async with ws.writer:
        guard(inv, ws, agent, rel)
        kind = await inv.fs(ws, tree.delete, rel, recursive=a.recursive)
        ws.collab.record(agent, "delete", rel.text)
    await announce(inv, ws, rel)
    return Reply(f"Deleted {rel.text} ({kind}).", {"path": rel.text, "type": kind})


class MoveArgs(Args, frozen=True):
    workspace: WorkspaceName
    source: PathArg
    destination: PathArg
    overwrite: bool = False
    make_dirs: bool = True
    member_token: Token | None = None


async def move_file(inv: Invocation, a: MoveArgs) -> Reply:
    ws = inv.workspace(a.workspace)
    src, dst = parse_path(a.source), parse_path(a.destination)
    agent = inv.agent(ws, a.member_token)
    async with ws.writer:
        guard(inv, ws, agent, src, dst)
        kind = await inv.fs(ws, tree.move, src, dst, overwrite=a.overwrite, make_dirs=a.make_dirs)
        ws.collab.record(agent, "move", src.text, to=dst.text)
    await announce(inv, ws, src, dst)
    return Reply(
        f"Moved {src.text} to {dst.text}.",
        {"source": src.text, "destination": dst.text, "type": kind},
    )


SPECS: Final[tuple[ToolSpec, ...]] = (
    tool_spec(
        "write_file",
        "Write a whole file (parent directories are created). With expected_version the "
        "write happens only if nobody changed the file since you read it; mode 'create' "
        "fails if it exists.",
        WriteArgs,
        write_file,
        destructive=True,
        output=output_schema(
            {**VERSIONED, "created": BOOLEAN}, "path", "uri", "version", "size", "created"
        ),
    ),
    tool_spec(
        "edit_file",
        "Replace old_text with new_text in a text file. old_text must occur exactly once "
        "unless replace_all is true. Optional expected_version as for write_file.",
        EditArgs,
        edit_file,
        destructive=True,
        output=output_schema(
            {**VERSIONED, "replacements": INTEGER}, "path", "uri", "version", "size", "replacements"
        ),
    ),
    tool_spec(
        "delete_file",
        "Delete a file, a symlink, or a directory (recursive to delete a non-empty one).",
        DeleteArgs,
        delete_file,
        destructive=True,
        output=output_schema({"path": STRING, "type": STRING}, "path", "type"),
    ),
    tool_spec(
        "move_file",
        "Move or rename a file or directory inside the workspace.",
        MoveArgs,
        move_file,
        destructive=True,
        output=output_schema(
            {"source": STRING, "destination": STRING, "type": STRING},
            "source",
            "destination",
            "type",
        ),
    ),
)
