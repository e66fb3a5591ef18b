"""Read a policy file: YAML → ``PolicyFile`` → checks that types alone cannot express.

Every failure is a ``ConfigError`` reading ``<source>: <path>: <problem>``, for example
``policy.yaml: rules[3].tools[0]: ...``. Duplicate YAML keys are refused (PyYAML would keep
the last one silently), and so are unknown fields, duplicate rule ids, undeclared roles and
rules that say nothing about *who* they apply to. A file that every local user may write
(or replace) is refused before it is read.
"""

from __future__ import annotations

import re
import stat
from pathlib import Path
from typing import Final

import msgspec

from bastion.config.load import parse_yaml_text, read_text_file
from bastion.errors import ConfigError
from bastion.policy.glob import is_literal
from bastion.policy.model import ArgCondition, Binding, PolicyFile, Rule

__all__ = ["MAX_POLICY_BYTES", "load_policy_file", "parse_policy"]

MAX_POLICY_BYTES: Final = 4 * 1024 * 1024
_AT: Final = re.compile(r"^(?P<problem>.*?)(?: - at `\$(?P<where>[^`]*)`)?$", re.DOTALL)
# Tool and prompt globs: the AZ-3 name alphabet plus the two wildcards.
_NAME_GLOB: Final = re.compile(r"^[A-Za-z0-9_.*?-]{1,128}$")


class _Invalid(Exception):
    def __init__(self, where: str, problem: str) -> None:
        super().__init__(problem)
        self.where = where
        self.problem = problem


def load_policy_file(path: Path) -> PolicyFile:
    """Read and check the policy file at ``path``.

    Raises:
        ConfigError: the file cannot be read, is too large, or is not a valid policy.
    """
    _refuse_writable_by_others(path)
    text = read_text_file(path, MAX_POLICY_BYTES)
    return parse_policy(text, source=path.name)


def _refuse_writable_by_others(path: Path) -> None:
    """Whoever may write the policy may grant themselves anything: a policy file that every
    local user may write, or that sits in a directory where every user may replace it (not
    sticky, like /tmp is), is refused.

    Raises:
        ConfigError: naming the file or directory and the ``chmod`` that fixes it.
    """
    try:
        real = path.resolve()
        mode = real.stat().st_mode
        folder = real.parent.stat().st_mode
    except OSError:
        return  # read_text_file says what is wrong with it
    if mode & stat.S_IWOTH:
        raise ConfigError(f"{path}: writable by every user; run: chmod o-w {real}")
    if folder & stat.S_IWOTH and not folder & stat.S_ISVTX:
        raise ConfigError(
            f"{path}: every user may replace it in its directory; run: chmod o-w {real.parent}"
        )


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
