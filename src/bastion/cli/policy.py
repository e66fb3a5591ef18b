"""``bastion policy test`` and ``bastion policy explain``: decide one request offline.

Who asks is ``--principal`` (the id as the gateway gives it, e.g. ``jwt:ISSUER#SUBJECT``) or
``--key NAME`` (API key NAME, whose id is ``apikey:NAME``). A principal glob in the file that
can match no id is warned about on stderr (``policy.principal_ids``).

Exit status: 0 allow, 1 deny, 2 usage (bad ``--arg``/``--at``), 78 when the policy file does
not load, whatever is wrong with it (a ``ConfigError`` naming the file and, for a value YAML
cannot read, such as ``2024-02-30``, its line: turned into 78 by ``bastion.cli``), so that a
broken file is never taken for a deny.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from bastion.policy import Decision, PolicyRequest, Target, TargetKind, load_policy
from bastion.policy.principal_ids import warn_unmatchable
from bastion.policy.principals import HeldRoles

__all__ = ["run_policy"]

EXIT_ALLOW: Final = 0
EXIT_DENY: Final = 1
EXIT_USAGE: Final = 2


class _Usage(Exception):
    pass


def run_policy(args: argparse.Namespace) -> int:
    """``args`` as parsed by ``bastion.cli``. Raises ConfigError when the policy file
    does not load."""
    kinds: tuple[TargetKind, ...] = ("tool", "resource", "prompt")
    target = next((Target(k, getattr(args, k)) for k in kinds if getattr(args, k)), None)
    return _run(
        args.policy_command,
        policy=args.policy,
        principal=args.principal if args.key is None else f"apikey:{args.key}",
        roles=args.role,
        claims=args.claim,
        method=args.method,
        target=target,
        args=args.arg,
        at=args.at,
    )


def _run(
    command: str,
    *,
    policy: str,
    principal: str,
    roles: Sequence[str],
    claims: Sequence[str],
    method: str,
    target: Target | None,
    args: Sequence[str],
    at: str | None,
) -> int:
    try:
        request = PolicyRequest(
            principal=principal,
            roles=tuple(roles),
            claims=_pairs(claims, "--claim", nested=True),  # as a JWT carries them
            method=method,
            target=target,
            arguments=_pairs(args, "--arg", nested=True),
            at=_time(at),
        )
    except _Usage as exc:
        print(f"bastion policy: {exc}", file=sys.stderr)
        return EXIT_USAGE
    compiled = load_policy(Path(policy))
    warn_unmatchable(compiled.source, policy)
    if command == "explain":
        decision, traces = compiled.explain(request)
        _print_decision(decision)
        roles_held = compiled.roles_of(request)
        print(f"roles: {', '.join(sorted(roles_held)) or '(none)'}")
        if isinstance(roles_held, HeldRoles) and roles_held.unsure:
            unsure = ", ".join(sorted(roles_held.unsure))
            print(f"unsure roles (a claim binding could not tell; deny rules only): {unsure}")
        print("rules, in file order:")
        for trace in traces:
            mark = "applies" if trace.applies else "skipped"
            why = "" if trace.applies else f": {trace.reason}"
            print(f"  {mark:7}  {trace.effect:5}  {trace.rule_id}{why}")
        if not traces:
            print("  (none considered)")
    else:
        decision = compiled.decide(request)
        _print_decision(decision)
    return EXIT_ALLOW if decision.allowed else EXIT_DENY


def _print_decision(decision: Decision) -> None:
    print(decision.effect)
    print(f"rule: {decision.rule_id}")
    print(f"explanation: {decision.explanation}")
    if decision.level is not None:
        print(f"level: {decision.level}")
    for obligation in decision.obligations:
        detail = json.dumps({f: getattr(obligation, f) for f in obligation.__struct_fields__})
        print(f"obligation: {type(obligation).__name__} {detail}")


def _pairs(items: Sequence[str], flag: str, *, nested: bool) -> dict[str, object]:
    """``key=value`` pairs; a value that parses as JSON (``5``, ``true``, ``["a"]``) is
    that JSON, anything else is a string. ``a.b=1`` nests when ``nested`` (``--arg`` and
    ``--claim``: ``realm_access.roles=[...]`` is the object a JWT carries)."""
    out: dict[str, object] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise _Usage(f"{flag} {item!r}: expected KEY=VALUE")
        try:
            value: object = json.loads(text)
        except ValueError:
            value = text
        node = out
        parts = key.split(".") if nested else [key]
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise _Usage(f"{flag} {item!r}: {part} is already a value")
            node = child
        node[parts[-1]] = value
    return out


def _time(text: str | None) -> datetime:
    if text is None:
        return datetime.now(UTC)  # the CLI is the edge: the engine itself never reads a clock
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise _Usage(f"--at {text!r}: not an ISO 8601 time") from None
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)
