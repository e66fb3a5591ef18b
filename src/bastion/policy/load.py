"""Read a policy file: YAML → ``PolicyFile`` → checks that types alone cannot express.

Every failure is a ``ConfigError`` reading ``<source>: <path>: <problem>``, for example
``policy.yaml: rules[3].tools[0]: ...``. Duplicate YAML keys are refused (PyYAML would keep
the last one silently), and so are unknown fields, duplicate rule ids, undeclared roles and
rules that say nothing about *who* they apply to. The YAML is bounded as the configuration's
is (``config.yaml_text``: aliases cannot expand past ``MAX_VALUES`` values), and so is what
gets compiled: at most ``MAX_RULES`` rules and ``MAX_POLICY_GLOBS`` patterns in all.

Whoever may write the policy may grant themselves anything, so a file that a user other than
root or the gateway's own could change is refused before it is read: every entry on the way
to it (the path as configured, each directory, each symlink and the target's directories)
must belong to root or the gateway's user and be writable by no one else (a sticky directory,
as /tmp is, excepted: ``bastion._file_trust``). ``read_policy_file`` returns the bytes' digest
and stamp with the text, so a reload can say exactly what it compiled.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Final, NamedTuple, TypeAlias

import msgspec

from bastion._file_trust import untrusted_step
from bastion.config.yaml_text import decode_text, parse_yaml_text
from bastion.errors import ConfigError
from bastion.policy.glob import is_literal
from bastion.policy.model import ArgCondition, Binding, PolicyFile, Rule

__all__ = [
    "MAX_POLICY_BYTES",
    "MAX_POLICY_GLOBS",
    "PolicySource",
    "Stamp",
    "load_policy_file",
    "parse_policy",
    "read_policy_file",
    "stamp_of",
]

MAX_POLICY_BYTES: Final = 4 * 1024 * 1024
# Globs in all (rules' roles, principals, methods, tools, resources and prompts, bindings'
# principals and roles, security.tools): far above a real policy; 10 000 rules of two globs
# each compile in about 1.5 s (off the event loop) and 100 MB.
MAX_POLICY_GLOBS: Final = 20_000
# A file's identity and version as stat sees it: inode, mtime, size, ctime (a chmod or chown
# changes it too, so a fixed permission is seen on the next poll).
Stamp: TypeAlias = tuple[int, int, int, int]
_AT: Final = re.compile(r"^(?P<problem>.*?)(?: - at `\$(?P<where>[^`]*)`)?$", re.DOTALL)
# Tool and prompt globs: the AZ-3 name alphabet plus the two wildcards.
_NAME_GLOB: Final = re.compile(r"^[A-Za-z0-9_.*?-]{1,128}$")


class _Invalid(Exception):
    def __init__(self, where: str, problem: str) -> None:
        super().__init__(problem)
        self.where = where
        self.problem = problem


class PolicySource(NamedTuple):
    """A policy file as read: its stamp, the sha-256 of its bytes, and its text."""

    stamp: Stamp
    digest: str
    text: str


def stamp_of(info: os.stat_result) -> Stamp:
    return info.st_ino, info.st_mtime_ns, info.st_size, info.st_ctime_ns


def load_policy_file(path: Path) -> PolicyFile:
    """Read and check the policy file at ``path``.

    Raises:
        ConfigError: the file cannot be read, is too large, is one that others could change,
            or is not a valid policy.
    """
    return parse_policy(read_policy_file(path).text, source=path.name)


def read_policy_file(path: Path) -> PolicySource:
    """The policy file at ``path`` as read, once it is known that only root or the gateway's
    user can change it (or replace it, or repoint a link on the way to it).

    Raises:
        ConfigError: naming ``path``, the entry at fault and the ``chmod``/``chown`` that
            fixes it; or the file cannot be read, is too large, or is not UTF-8.
    """
    step = untrusted_step(path)
    if step is not None:
        raise ConfigError(
            f"{path}: others may change the policy: {step.entry} {step.why};"
            f" run: {step.fix} {step.entry}"
        )
    try:
        with path.open("rb") as file:
            stamp = stamp_of(os.fstat(file.fileno()))
            raw = file.read(MAX_POLICY_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    text = decode_text(path, raw, MAX_POLICY_BYTES)
    return PolicySource(stamp, hashlib.sha256(raw).hexdigest(), text)


def parse_policy(text: str, *, source: str = "<policy>") -> PolicyFile:
    """Parse and check a policy document.

    Raises:
        ConfigError: naming ``source`` and the path of the offending value.
    """
    data = parse_yaml_text(text, source)
    if data is None:
        data = {}
    try:
        policy = msgspec.convert(data, PolicyFile)
    except msgspec.ValidationError as exc:
        found = _AT.fullmatch(str(exc))
        problem, where = (found["problem"], found["where"] or "") if found else (str(exc), "")
        where = where.lstrip(".")
        prefix = f"{where}: " if where else ""
        raise ConfigError(f"{source}: {prefix}{problem[:1].lower()}{problem[1:]}") from exc
    try:
        _check(policy)
    except _Invalid as exc:
        raise ConfigError(f"{source}: {exc.where}: {exc.problem}") from exc
    return policy


def _check(policy: PolicyFile) -> None:
    globs = len(policy.security.tools) + sum(
        (b.principal is not None) + len(b.roles) for b in policy.principals
    )
    for rule in policy.rules:
        lists = (rule.roles, rule.principals, rule.methods, rule.tools, rule.resources)
        globs += sum(len(each or ()) for each in (*lists, rule.prompts))
    if globs > MAX_POLICY_GLOBS:
        raise _Invalid("rules", f"{globs} globs in all; at most {MAX_POLICY_GLOBS} are allowed")
    declared = set(policy.roles)
    for i, binding in enumerate(policy.principals):
        _check_binding(binding, f"principals[{i}]", declared)
    seen: dict[str, int] = {}
    for i, rule in enumerate(policy.rules):
        at = f"rules[{i}]"
        if rule.id in seen:
            raise _Invalid(
                f"{at}.id", f"duplicate rule id {rule.id!r} (also rules[{seen[rule.id]}])"
            )
        seen[rule.id] = i
        _check_rule(rule, at, declared)
    for glob, spec in policy.security.tools.items():
        at = f"security.tools[{glob!r}]"
        if not _NAME_GLOB.fullmatch(glob):
            raise _Invalid(at, "not a tool name glob ([A-Za-z0-9_.-] and * ?)")
        if spec.level != "high" and (spec.step_up is not None or spec.approval is not None):
            raise _Invalid(at, "step_up and approval are only for level high")


def _check_binding(binding: Binding, at: str, declared: set[str]) -> None:
    by_claim = binding.claim is not None or binding.value is not None
    if (binding.principal is None) == (not by_claim):
        raise _Invalid(at, "give either principal (an id glob) or claim and value")
    if by_claim and (binding.claim is None or binding.value is None):
        raise _Invalid(at, "claim and value go together")
    for j, role in enumerate(binding.roles):
        if role not in declared:
            raise _Invalid(f"{at}.roles[{j}]", f"role {role!r} is not declared under roles")


def _check_rule(rule: Rule, at: str, declared: set[str]) -> None:
    if rule.roles is None and rule.principals is None:
        raise _Invalid(at, "a rule needs roles or principals (principals: ['*'] means everyone)")
    if rule.methods is None and not (rule.tools or rule.resources or rule.prompts):
        raise _Invalid(at, "a rule needs methods, tools, resources or prompts")
    for j, role in enumerate(rule.roles or ()):
        if is_literal(role) and role not in declared:
            raise _Invalid(f"{at}.roles[{j}]", f"role {role!r} is not declared under roles")
    for field in ("tools", "prompts"):
        for j, glob in enumerate(getattr(rule, field) or ()):
            if not _NAME_GLOB.fullmatch(glob):
                raise _Invalid(
                    f"{at}.{field}[{j}]",
                    f"{glob!r} is not a name glob ([A-Za-z0-9_.-] and * ?, at most 128)",
                )
    hours = rule.when.time.hours if rule.when and rule.when.time else None
    if hours is not None and hours[0] == hours[1]:
        raise _Invalid(f"{at}.when.time.hours", "an empty window (start equals end)")
    for path, cond in ((rule.when.args or {}) if rule.when else {}).items():
        if _no_test(cond):
            raise _Invalid(f"{at}.when.args[{path!r}]", "no test given (glob, equals, in, le...)")


def _no_test(cond: ArgCondition) -> bool:
    bounds = (cond.le, cond.lt, cond.ge, cond.gt)
    given = cond.glob is not None or cond.equals is not msgspec.UNSET or cond.in_ is not None
    return not given and all(b is None for b in bounds)
