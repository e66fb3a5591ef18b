"""The command policy of the workspace server: which commands a role may run, which paths
it may not change, which sandbox profiles it may use, and how often an agent may run.

Rules are argv patterns, never substrings: ``["python3", "-m", "unittest", "**"]`` is a
program (exact name or glob) and then one glob per argument; ``*`` in an element matches
within that one argument, and a ``**`` element matches any number of arguments (zero or
more). A deny rule that matches wins over every allow rule. The policy is read from a YAML
or JSON file (``--policy FILE``); without one, ``DEFAULT_POLICY`` applies (see the README).

A member's role comes from ``assign`` (member-name globs, first match) or ``default_role``.
Member names are chosen by the agents themselves, so roles separate cooperating agents
(a reviewer that must not touch ``src``); authentication is the gateway's job.
"""

from __future__ import annotations

import fnmatch
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Final

import msgspec
import yaml
from msgspec import Meta

from bastion.errors import ConfigError
from bastion.sandbox.limits import PROFILES
from bastion.workspace.errors import InvalidInput, Refused, TooLarge
from bastion.workspace.paths import RelPath, parse_path

__all__ = [
    "DEFAULT_POLICY",
    "CommandPolicy",
    "Decision",
    "RateLimiter",
    "RoleRules",
    "WorkspacePolicy",
    "load_policy",
    "match_argv",
    "parse_policy",
]

MAX_POLICY_BYTES: Final = 1024 * 1024
MAX_PATTERN_ELEMENTS: Final = 64
MAX_ARGV: Final = 1024

Pattern = Annotated[
    list[Annotated[str, Meta(min_length=1, max_length=4096)]],
    Meta(min_length=1, max_length=MAX_PATTERN_ELEMENTS),
]


class RoleRules(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What one role may do. ``profiles[0]`` is the profile used when none is asked for."""

    allow: list[Pattern] = msgspec.field(default_factory=list)
    deny: list[Pattern] = msgspec.field(default_factory=list)
    readonly: list[Annotated[str, Meta(min_length=1, max_length=4000)]] = msgspec.field(
        default_factory=list
    )
    profiles: Annotated[list[str], Meta(min_length=1)] = msgspec.field(
        default_factory=lambda: ["default"]
    )


class WorkspacePolicy(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    roles: dict[str, RoleRules]
    default_role: str = "default"
    # Member-name glob -> role, first match wins.
    assign: dict[str, str] = msgspec.field(default_factory=dict)


class RateRule(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A token bucket per agent: ``burst`` runs at once, refilled at ``per_minute``."""

    per_minute: Annotated[float, Meta(gt=0)] = 30.0
    burst: Annotated[int, Meta(ge=1)] = 10


class CommandPolicy(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The whole file: a default for every workspace and overrides by workspace name."""

    default: WorkspacePolicy
    workspaces: dict[str, WorkspacePolicy] = msgspec.field(default_factory=dict)
    rate: RateRule = msgspec.field(default_factory=RateRule)
    max_running: Annotated[int, Meta(ge=1, le=256)] = 4  # per workspace
    # On the whole server: 16 sandboxes of the default profile may use 16 GiB of memory.
    max_running_total: Annotated[int, Meta(ge=1, le=4096)] = 16

    def __post_init__(self) -> None:
        for where, ws in [("default", self.default)] + [
            (f"workspaces.{name}", ws) for name, ws in self.workspaces.items()
        ]:
            _check_workspace_policy(where, ws)

    def for_workspace(self, name: str) -> WorkspacePolicy:
        return self.workspaces.get(name, self.default)

    def role_of(self, workspace: str, member_name: str | None) -> tuple[str, RoleRules]:
        ws = self.for_workspace(workspace)
        role = ws.default_role
        if member_name is not None:
            for glob, assigned in ws.assign.items():
                if fnmatch.fnmatchcase(member_name, glob):
                    role = assigned
                    break
        return role, ws.roles[role]

    def decide(self, workspace: str, member_name: str | None, argv: Sequence[str]) -> Decision:
        """Whether ``argv`` may run for this member, and the rule that decided it."""
        role, rules = self.role_of(workspace, member_name)
        for pattern in rules.deny:
            if match_argv(pattern, argv):
                return Decision(False, role, f"denied by rule {_show(pattern)} of role {role}")
        for pattern in rules.allow:
            if match_argv(pattern, argv):
                return Decision(True, role, f"allowed by rule {_show(pattern)} of role {role}")
        program = argv[0] if argv else ""
        return Decision(
            False,
            role,
            f"no allow rule of role {role} matches {program!r} with these arguments "
            f"(allowed: {', '.join(_show(p) for p in rules.allow) or 'nothing'})",
        )

    def readonly_paths(self, workspace: str, member_name: str | None) -> list[RelPath]:
        _, rules = self.role_of(workspace, member_name)
        return [parse_path(path) for path in rules.readonly]

    def check_writable(self, workspace: str, member_name: str | None, rel: RelPath) -> None:
        """Raises Refused when ``rel``, or something beneath or above it, is read-only."""
        role, _ = self.role_of(workspace, member_name)
        for ro in self.readonly_paths(workspace, member_name):
            shorter = min(len(ro.parts), len(rel.parts))
            if ro.parts[:shorter] == rel.parts[:shorter]:
                raise Refused(
                    f"{rel.display} is read-only for role {role} (policy: readonly {ro.display})"
                )

    def profile_for(self, workspace: str, member_name: str | None, asked: str | None) -> str:
        role, rules = self.role_of(workspace, member_name)
        if asked is None:
            return rules.profiles[0]
        if asked not in rules.profiles:
            raise Refused(
                f"profile {asked!r} is not allowed for role {role} "
                f"(allowed: {', '.join(rules.profiles)})"
            )
        return asked


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    role: str
    reason: str


def _show(pattern: Sequence[str]) -> str:
    return "[" + ", ".join(pattern) + "]"


def _check_workspace_policy(where: str, ws: WorkspacePolicy) -> None:
    if ws.default_role not in ws.roles:
        raise ValueError(f"{where}.default_role: no role named {ws.default_role!r}")
    for glob, role in ws.assign.items():
        if role not in ws.roles:
            raise ValueError(f"{where}.assign.{glob}: no role named {role!r}")
    for name, rules in ws.roles.items():
        at = f"{where}.roles.{name}"
        for kind, patterns in (("allow", rules.allow), ("deny", rules.deny)):
            for i, pattern in enumerate(patterns):
                if pattern[0] == "**":
                    raise ValueError(f"{at}.{kind}[{i}]: the program cannot be '**'")
        for i, path in enumerate(rules.readonly):
            if any(ch in path for ch in "*?["):
                raise ValueError(f"{at}.readonly[{i}]: give a path, not a glob")
            try:
                parse_path(path)
            except InvalidInput as exc:
                raise ValueError(f"{at}.readonly[{i}]: {exc.message}") from None
        for i, profile in enumerate(rules.profiles):
            if profile not in PROFILES:
                raise ValueError(
                    f"{at}.profiles[{i}]: unknown profile {profile!r} "
                    f"(known: {', '.join(PROFILES)})"
                )


def match_argv(pattern: Sequence[str], argv: Sequence[str]) -> bool:
    """True when ``argv`` matches ``pattern`` element by element (see the module doc)."""
    if not argv or len(argv) > MAX_ARGV:
        return False

    # done[a]: the pattern elements seen so far match exactly argv[:a] (O(pattern x argv)).
    done = [True] + [False] * len(argv)
    for element in pattern:
        step = [False] * (len(argv) + 1)
        if element == "**":
            reached = False
            for a, ok in enumerate(done):
                reached = reached or ok
                step[a] = reached
        else:
            for a, arg in enumerate(argv):
                if done[a] and fnmatch.fnmatchcase(arg, element):
                    step[a + 1] = True
        done = step
    return done[-1]


# Everything runs in the sandbox anyway; this list keeps agents to the tools of a Python
# project and to git commands that do not change history or reach the network.
DEFAULT_POLICY: Final = CommandPolicy(
    default=WorkspacePolicy(
        roles={
            "default": RoleRules(
                allow=[
                    ["python3", "**"],
                    ["python", "**"],
                    ["pytest", "**"],
                    ["ls", "**"],
                    ["cat", "**"],
                    ["head", "**"],
                    ["tail", "**"],
                    ["wc", "**"],
                    ["grep", "**"],
                    ["diff", "**"],
                    ["echo", "**"],
                    ["true"],
                    ["false"],
                    ["sleep", "*"],
                    ["git", "status", "**"],
                    ["git", "diff", "**"],
                    ["git", "log", "**"],
                    ["git", "show", "**"],
                ],
                deny=[["python3", "-m", "pip", "**"], ["python", "-m", "pip", "**"]],
                profiles=["default", "strict"],
            )
        }
    )
)


def parse_policy(text: str, *, source: str) -> CommandPolicy:
    """Check a policy given as YAML (JSON is YAML too).

    Raises:
        ConfigError: naming ``source`` and the path of the offending value.
    """
    if len(text.encode("utf-8", "surrogatepass")) > MAX_POLICY_BYTES:
        raise ConfigError(f"{source}: larger than 1 MiB")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        raise ConfigError(f"{where}: {getattr(exc, 'problem', None) or 'not YAML'}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping at the top")
    try:
        return msgspec.convert(data, CommandPolicy)
    except msgspec.ValidationError as exc:
        # msgspec says "... - at `$.default.roles.x.allow[0]`"; a __post_init__ problem
        # arrives as our own text, which already names its path.
        raise ConfigError(f"{source}: {exc}") from None


def load_policy(path: Path) -> CommandPolicy:
    """Raises ConfigError when the file cannot be read or is not a valid policy."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (invalid byte at offset {exc.start})") from exc
    return parse_policy(text, source=str(path))


class RateLimiter:
    """Token buckets by agent id, at most ``max_agents`` of them (least recently used go,
    and a forgotten agent comes back with a full bucket, which costs at most one burst)."""

    def __init__(
        self, rule: RateRule, clock: Callable[[], float], *, max_agents: int = 4096
    ) -> None:
        self.rule = rule
        self._clock = clock
        self._max = max_agents
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, agent_id: str) -> None:
        """Spend one run. Raises TooLarge with the wait when the bucket is empty."""
        now = self._clock()
        rate = self.rule.per_minute / 60.0
        tokens, then = self._buckets.pop(agent_id, (float(self.rule.burst), now))
        tokens = min(float(self.rule.burst), tokens + (now - then) * rate)
        if tokens < 1.0:
            self._buckets[agent_id] = (tokens, now)
            wait = (1.0 - tokens) / rate
            raise TooLarge(
                f"rate limit: at most {self.rule.burst} runs at once and "
                f"{self.rule.per_minute:g} per minute per agent; try again in {wait:.1f} s"
            )
        self._buckets[agent_id] = (tokens - 1.0, now)
        while len(self._buckets) > self._max:
            self._buckets.popitem(last=False)


def describe_policy(policy: CommandPolicy, workspace: str) -> Mapping[str, object]:
    """The policy of one workspace as plain data (for the get_policy tool)."""
    return msgspec.to_builtins(policy.for_workspace(workspace))  # type: ignore[no-any-return]
