"""Who is in a workspace and what they did: members, advisory locks, the change log and
the broadcast log. Pure state with injected clocks; no I/O, no notifications.

A member is tied either to a 2025-11-25 session (it leaves when the session ends) or, on
stateless 2026-07-28, to the secret token ``join`` returned (it lapses after
``member_idle_seconds`` without a call). Behind a gateway that passes principals, an agent
also carries its principal, and a member's token works only for the principal who joined.
Locks are advisory and cover a path and
everything beneath it; they expire, and they end with their holder's membership. Every
table here is capped by ``WorkspaceLimits``.
"""

from __future__ import annotations

import hashlib
import secrets
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final

from bastion._types import Clock, JSONObject
from bastion.workspace.errors import InvalidInput, Locked, NotFound, TooLarge
from bastion.workspace.limits import WorkspaceLimits
from bastion.workspace.paths import RelPath

__all__ = ["PRINCIPAL_ID", "Agent", "Change", "Collaboration", "Lock", "Member", "Message", "iso"]

# Agent id prefix of a principal acting without joining (member ids are "m-...").
PRINCIPAL_ID: Final = "principal:"


def iso(wall: float) -> str:
    """An RFC 3339 UTC timestamp with milliseconds, e.g. ``2026-08-01T12:00:00.000Z``."""
    return datetime.fromtimestamp(wall, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


@dataclass(frozen=True, slots=True)
class Agent:
    """Who did something: a member, the gateway's principal, or ``anonymous`` for callers
    that never joined."""

    id: str
    name: str
    principal: str | None = None  # the gateway's authenticated caller, when it says

    @property
    def owner(self) -> str:
        """Whose share a run counts against: the principal if known, else this agent."""
        return self.id if self.principal is None else f"{PRINCIPAL_ID}{self.principal}"

    def to_json(self) -> JSONObject:
        found: JSONObject = {"id": self.id, "name": self.name}
        if self.principal is not None:
            found["principal"] = self.principal
        return found


@dataclass(slots=True)
class Member:
    agent: Agent
    token_digest: bytes
    session: object | None  # the joining connection's session; None when stateless
    joined_at: float
    last_seen: float
    # What the member is running; kept by the command runner (one JSON object each).
    running: dict[str, JSONObject] = field(default_factory=dict)

    def to_json(self) -> JSONObject:
        return {
            **self.agent.to_json(),
            "joined_at": iso(self.joined_at),
            "connection": "session" if self.session is not None else "token",
            "running": list(self.running.values()),
        }


@dataclass(frozen=True, slots=True)
class Lock:
    path: RelPath
    holder: Agent
    expires: float  # on the monotonic clock
    expires_wall: float

    def to_json(self, now: float) -> JSONObject:
        return {
            "path": self.path.display,
            "holder": self.holder.to_json(),
            "expires_at": iso(self.expires_wall),
            "expires_in_seconds": round(max(0.0, self.expires - now), 3),
        }


@dataclass(frozen=True, slots=True)
class Change:
    seq: int
    time: str
    agent: Agent
    op: str
    path: str
    to: str | None = None
    version: str | None = None

    def to_json(self) -> JSONObject:
        entry: JSONObject = {
            "seq": self.seq,
            "time": self.time,
            "agent": self.agent.to_json(),
            "op": self.op,
            "path": self.path,
        }
        if self.to is not None:
            entry["to"] = self.to
        if self.version is not None:
            entry["version"] = self.version
        return entry


@dataclass(frozen=True, slots=True)
class Message:
    seq: int
    time: str
    sender: Agent
    text: str

    def to_json(self, workspace: str) -> JSONObject:
        return {
            "type": "workspace.broadcast",
            "workspace": workspace,
            "seq": self.seq,
            "time": self.time,
            "from": self.sender.to_json(),
            "message": self.text,
        }


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class Collaboration:
    """The shared state of one workspace."""

    def __init__(self, limits: WorkspaceLimits, clock: Clock, wall: Callable[[], float]) -> None:
        self.limits = limits
        self._clock = clock
        self._wall = wall
        self.members: dict[str, Member] = {}
        self.locks: dict[RelPath, Lock] = {}
        self.changes: deque[Change] = deque(maxlen=limits.change_log_size)
        self.messages: deque[Message] = deque(maxlen=limits.message_log_size)
        self._change_seq = 0
        self._message_seq = 0

    # -- members ----------------------------------------------------------------------

    def join(
        self, name: str, session: object | None, principal: str | None = None
    ) -> tuple[Member, str]:
        """A new member and its secret token (shown once, to the joiner only)."""
        self.prune()
        share = self.limits.max_members_per_principal
        if principal is not None and self._held_by(principal) >= share:
            raise TooLarge(
                f"you already hold {share} of the workspace's {self.limits.max_members} "
                "member places (leave_workspace frees one)"
            )
        if len(self.members) >= self.limits.max_members:
            raise TooLarge(f"the workspace already has {self.limits.max_members} members")
        member_id = f"m-{secrets.token_hex(4)}"
        while member_id in self.members:
            member_id = f"m-{secrets.token_hex(4)}"
        token = f"wsm_{secrets.token_urlsafe(24)}"
        now = self._clock()
        agent = Agent(member_id, name, principal)
        member = Member(agent, _digest(token), session, self._wall(), now)
        self.members[member_id] = member
        return member, token

    def _held_by(self, principal: str) -> int:
        return sum(1 for m in self.members.values() if m.agent.principal == principal)

    def leave(self, member: Member) -> None:
        self.members.pop(member.agent.id, None)
        for path, lock in list(self.locks.items()):
            if lock.holder.id == member.agent.id:
                del self.locks[path]

    def by_token(self, token: str, principal: str | None = None) -> Member:
        """The member holding ``token``, if ``principal`` joined it (a token is not
        transferable between principals)."""
        self.prune()
        digest = _digest(token)
        for member in self.members.values():
            mine = member.agent.principal == principal
            if secrets.compare_digest(member.token_digest, digest) and mine:
                member.last_seen = self._clock()
                return member
        raise NotFound("unknown member token for this workspace (join it first)")

    def by_session(self, session: object) -> Member | None:
        for member in self.members.values():
            if member.session is session:
                member.last_seen = self._clock()
                return member
        return None

    def prune(self) -> None:
        """Forget lapsed stateless members and expired locks."""
        now = self._clock()
        for member in list(self.members.values()):
            idle = now - member.last_seen
            if member.session is None and idle > self.limits.member_idle_seconds:
                self.leave(member)
        for path, lock in list(self.locks.items()):
            if lock.expires <= now:
                del self.locks[path]

    # -- locks --------------------------------------------------------------------------

    def lock(self, path: RelPath, holder: Agent, seconds: float | None) -> Lock:
        self.prune()
        ttl = self.limits.default_lock_seconds if seconds is None else seconds
        if not 0 < ttl <= self.limits.max_lock_seconds:
            raise InvalidInput(
                f"lock duration must be more than 0 and at most {self.limits.max_lock_seconds} s"
            )
        self.check_unlocked(path, holder)
        if path not in self.locks and len(self.locks) >= self.limits.max_locks:
            raise TooLarge(f"the workspace already has {self.limits.max_locks} locks")
        now = self._clock()
        lock = Lock(path, holder, now + ttl, self._wall() + ttl)
        self.locks[path] = lock
        return lock

    def unlock(self, path: RelPath, holder: Agent) -> None:
        self.prune()
        lock = self.locks.get(path)
        if lock is None:
            raise NotFound(f"{path.display} is not locked")
        if lock.holder.id != holder.id:
            raise Locked(self._held_message(lock, "only its holder can unlock it"))
        del self.locks[path]

    def check_unlocked(self, path: RelPath, agent: Agent) -> None:
        """Raises Locked if another agent holds a lock on ``path``, above or below it."""
        self.prune()
        for lock in self.locks.values():
            if lock.holder.id == agent.id:
                continue
            shorter = min(len(lock.path.parts), len(path.parts))
            if lock.path.parts[:shorter] == path.parts[:shorter]:
                raise Locked(self._held_message(lock, "try again after it expires"))

    def _held_message(self, lock: Lock, advice: str) -> str:
        left = max(0.0, lock.expires - self._clock())
        return (
            f"{lock.path.display} is locked by {lock.holder.name} ({lock.holder.id}) until "
            f"{iso(lock.expires_wall)} (in {left:.0f} s); {advice}"
        )

    def lock_info(self, lock: Lock) -> JSONObject:
        return lock.to_json(self._clock())

    def lock_list(self) -> list[JSONObject]:
        self.prune()
        now = self._clock()
        return [lock.to_json(now) for lock in self.locks.values()]

    # -- logs ---------------------------------------------------------------------------

    def record(
        self, agent: Agent, op: str, path: str, *, to: str | None = None, version: str | None = None
    ) -> Change:
        self._change_seq += 1
        change = Change(self._change_seq, iso(self._wall()), agent, op, path, to, version)
        self.changes.append(change)
        return change

    def post(self, sender: Agent, text: str) -> Message:
        self._message_seq += 1
        message = Message(self._message_seq, iso(self._wall()), sender, text)
        self.messages.append(message)
        return message
