"""The collaboration tools: join, leave, members, broadcast, advisory locks, change log.

A broadcast reaches members two ways. Members on a 2025-11-25 session get it pushed as a
``notifications/message`` log notification (level ``notice``, logger
``bastion.workspace.broadcast``, ``data`` a ``workspace.broadcast`` object with the
sender and text). Every broadcast is also kept in ``workspace-meta://{ws}/messages``, whose
``resources/updated`` reaches 2026-07-28 members listening on that URI (that revision
only lets a server send what a ``subscriptions/listen`` stream asked for).
"""

from __future__ import annotations

from typing import Annotated, Final

from msgspec import Meta

from bastion._types import JSONObject
from bastion.workspace.errors import InvalidInput
from bastion.workspace.invocation import Invocation
from bastion.workspace.paths import parse_path
from bastion.workspace.resources import meta_uri
from bastion.workspace.session import AgentSession
from bastion.workspace.toolkit import (
    OBJECT,
    OBJECTS,
    STRING,
    Args,
    PathArg,
    Reply,
    Token,
    ToolSpec,
    WorkspaceName,
    object_schema,
    tool_spec,
)

__all__ = ["BROADCAST_LOGGER", "SPECS"]

BROADCAST_LOGGER: Final = "bastion.workspace.broadcast"
MAX_CHANGES_PAGE: Final = 200
DisplayName = Annotated[str, Meta(min_length=1, max_length=64, description="your display name")]


def _check_display_name(name: str) -> str:
    if not name.strip() or not name.isprintable():
        raise InvalidInput("name must be printable text (no control characters)")
    return name.strip()


class JoinArgs(Args, frozen=True):
    workspace: WorkspaceName
    name: DisplayName


async def join_workspace(inv: Invocation, a: JoinArgs) -> Reply:
    ws = inv.workspace(a.workspace)
    name = _check_display_name(a.name)
    if inv.session_bound and ws.collab.by_session(inv.session) is not None:
        raise InvalidInput(f"this session has already joined {ws.name}")
    session = inv.session if inv.session_bound else None
    member, token = ws.collab.join(name, session, inv.principal)
    await inv.server.updated([meta_uri(ws.name, "members")])
    members = [m.to_json() for m in ws.collab.members.values()]
    return Reply(
        f"Joined {ws.name} as {name} ({member.agent.id}); {len(members)} member(s) here. "
        "Keep member_token to act as this member on requests without a session.",
        {
            "workspace": ws.name,
            "member": member.agent.to_json(),
            "member_token": token,
            "members": members,
        },
    )


class MemberArgs(Args, frozen=True):
    workspace: WorkspaceName
    member_token: Token | None = None


async def leave_workspace(inv: Invocation, a: MemberArgs) -> Reply:
    ws = inv.workspace(a.workspace)
    member = inv.member(ws, a.member_token)
    ws.collab.leave(member)
    await inv.server.updated([meta_uri(ws.name, "members")])
    return Reply(f"Left {ws.name}.", {"workspace": ws.name, "member": member.agent.to_json()})


class WorkspaceArgs(Args, frozen=True):
    workspace: WorkspaceName


async def list_members(inv: Invocation, a: WorkspaceArgs) -> Reply:
    ws = inv.workspace(a.workspace)
    ws.collab.prune()
    members = [m.to_json() for m in ws.collab.members.values()]
    locks = ws.collab.lock_list()
    lines = [f"{m['name']} ({m['id']}), running {len(m['running'])}" for m in members]
    lines += [f"lock {k['path']} by {k['holder']['name']} until {k['expires_at']}" for k in locks]
    return Reply("\n".join(lines) or "Nobody is here.", {"members": members, "locks": locks})


class BroadcastArgs(Args, frozen=True):
    workspace: WorkspaceName
    message: Annotated[str, Meta(min_length=1, max_length=4000)]
    member_token: Token | None = None


async def broadcast(inv: Invocation, a: BroadcastArgs) -> Reply:
    ws = inv.workspace(a.workspace)
    sender = inv.member(ws, a.member_token)
    if len(a.message) > inv.server.limits.max_message_chars:
        raise InvalidInput(f"message is longer than {inv.server.limits.max_message_chars}")
    message = ws.collab.post(sender.agent, a.message)
    payload = message.to_json(ws.name)
    pushed: list[JSONObject] = []
    for member in list(ws.collab.members.values()):
        if member is sender or not isinstance(member.session, AgentSession):
            continue
        if await member.session.log("notice", payload, BROADCAST_LOGGER):
            pushed.append(member.agent.to_json())
    await inv.server.updated([meta_uri(ws.name, "messages")])
    return Reply(
        f"Broadcast #{message.seq} sent; pushed to {len(pushed)} member(s) with a session, "
        f"and kept in {meta_uri(ws.name, 'messages')}.",
        {"seq": message.seq, "pushed_to": pushed, "uri": meta_uri(ws.name, "messages")},
    )


class LockArgs(Args, frozen=True):
    workspace: WorkspaceName
    path: PathArg
    seconds: Annotated[float, Meta(gt=0)] | None = None
    member_token: Token | None = None


async def lock_file(inv: Invocation, a: LockArgs) -> Reply:
    ws, rel = inv.workspace(a.workspace), parse_path(a.path, allow_root=True)
    member = inv.member(ws, a.member_token)
    lock = ws.collab.lock(rel, member.agent, a.seconds)
    await inv.server.updated([meta_uri(ws.name, "members")])
    info = ws.collab.lock_info(lock)
    return Reply(f"Locked {rel.display} until {info['expires_at']}.", info)


async def unlock_file(inv: Invocation, a: LockArgs) -> Reply:
    ws, rel = inv.workspace(a.workspace), parse_path(a.path, allow_root=True)
    member = inv.member(ws, a.member_token)
    ws.collab.unlock(rel, member.agent)
    await inv.server.updated([meta_uri(ws.name, "members")])
    return Reply(f"Unlocked {rel.display}.", {"path": rel.display})


class ChangesArgs(Args, frozen=True):
    workspace: WorkspaceName
    since: Annotated[int, Meta(ge=0, description="only changes after this seq")] = 0
    limit: Annotated[int, Meta(ge=1, le=MAX_CHANGES_PAGE)] = 50


async def list_changes(inv: Invocation, a: ChangesArgs) -> Reply:
    ws = inv.workspace(a.workspace)
    later = [c for c in ws.collab.changes if c.seq > a.since][: a.limit]
    changes = [c.to_json() for c in later]
    lines = [
        f"#{c.seq} {c.time} {c.agent.name} ({c.agent.id}) {c.op} {c.path}"
        + (f" -> {c.to}" if c.to else "")
        for c in later
    ]
    latest = ws.collab.changes[-1].seq if ws.collab.changes else 0
    return Reply("\n".join(lines) or "No changes.", {"changes": changes, "latest_seq": latest})


SPECS: Final[tuple[ToolSpec, ...]] = (
    tool_spec(
        "join_workspace",
        "Join a workspace under a display name: you appear in list_members, receive "
        "broadcasts, can lock files, and your changes are attributed to you. Returns a "
        "member_token; pass it on later calls when your client has no session (2026-07-28).",
        JoinArgs,
        join_workspace,
        output=object_schema(
            {"workspace": STRING, "member": OBJECT, "member_token": STRING, "members": OBJECTS},
            ["workspace", "member", "member_token"],
        ),
    ),
    tool_spec(
        "leave_workspace",
        "Leave a workspace; your locks are released.",
        MemberArgs,
        leave_workspace,
        output=object_schema({"workspace": STRING, "member": OBJECT}, ["workspace", "member"]),
    ),
    tool_spec(
        "list_members",
        "Who is in a workspace, what they are running, which locks they hold.",
        WorkspaceArgs,
        list_members,
        read_only=True,
        output=object_schema({"members": OBJECTS, "locks": OBJECTS}, ["members", "locks"]),
    ),
    tool_spec(
        "broadcast",
        "Send a message to every other member of the workspace (as a log notification to "
        "members with a session; kept in workspace-meta://{workspace}/messages).",
        BroadcastArgs,
        broadcast,
        output=object_schema(
            {"seq": {"type": "integer"}, "pushed_to": OBJECTS, "uri": STRING},
            ["seq", "pushed_to", "uri"],
        ),
    ),
    tool_spec(
        "lock_file",
        "Take an advisory lock on a path (and everything under it) for some seconds "
        "(default 60): other agents' writes, edits, moves and deletes there are refused "
        "until you unlock it or it expires. Locking again extends your lock.",
        LockArgs,
        lock_file,
        output=object_schema(
            {
                "path": STRING,
                "holder": OBJECT,
                "expires_at": STRING,
                "expires_in_seconds": {"type": "number"},
            },
            ["path", "holder", "expires_at"],
        ),
    ),
    tool_spec(
        "unlock_file",
        "Release your advisory lock on a path.",
        LockArgs,
        unlock_file,
        output=object_schema({"path": STRING}, ["path"]),
    ),
    tool_spec(
        "list_changes",
        "The workspace's change log: who changed which path, when, and how (bounded; page "
        "with since).",
        ChangesArgs,
        list_changes,
        read_only=True,
        output=object_schema(
            {"changes": OBJECTS, "latest_seq": {"type": "integer"}}, ["changes", "latest_seq"]
        ),
    ),
)
