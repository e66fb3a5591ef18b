"""Which rules can possibly apply to a request, found without scanning them all.

Rules that name targets are indexed by target kind and by each name glob: literal names in a
dict, wildcard globs under their literal prefix (looked up for each prefix length in use,
so the cost follows the name's length, not the number of rules). Rules without targets are
indexed by literal method, or kept in a short list when a method glob has a wildcard.
The index only narrows: every candidate is still checked in full by ``CompiledRule``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from bastion.policy.decision import PolicyRequest, TargetKind
from bastion.policy.glob import is_literal, literal_prefix
from bastion.policy.rules import CompiledRule

__all__ = ["RuleIndex"]


class _NameIndex:
    __slots__ = ("_exact", "_lengths", "_prefixed")

    def __init__(self) -> None:
        self._exact: dict[str, list[int]] = defaultdict(list)
        self._prefixed: dict[str, list[int]] = defaultdict(list)
        self._lengths: tuple[int, ...] = ()

    def add(self, glob: str, key: int) -> None:
        if is_literal(glob):
            self._exact[glob].append(key)
        else:
            self._prefixed[literal_prefix(glob)].append(key)

    def freeze(self) -> None:
        self._exact = dict(self._exact)
        self._prefixed = dict(self._prefixed)
        self._lengths = tuple(sorted({len(p) for p in self._prefixed}))

    def collect(self, name: str, into: set[int]) -> None:
        if (hit := self._exact.get(name)) is not None:
            into.update(hit)
        prefixed = self._prefixed
        for length in self._lengths:
            if length > len(name):
                break
            if (hit := prefixed.get(name[:length])) is not None:
                into.update(hit)


class RuleIndex:
    """Candidate rules for a request, as sort keys: all denies before all allows, each in
    file order (key = position for a deny, position + len(rules) for an allow)."""

    __slots__ = ("_any_method", "_by_method", "_targets", "rules")

    def __init__(self, rules: Sequence[CompiledRule]) -> None:
        count = len(rules)
        self.rules: dict[int, CompiledRule] = {}
        by_method: dict[str, list[int]] = defaultdict(list)
        any_method: list[int] = []
        self._targets: dict[TargetKind, _NameIndex] = {
            "tool": _NameIndex(),
            "resource": _NameIndex(),
            "prompt": _NameIndex(),
        }
        for rule in rules:
            key = rule.position + (0 if rule.deny else count)
            self.rules[key] = rule
            if rule.targets:
                for kind, globs in rule.targets.items():
                    for glob in globs.globs:
                        self._targets[kind].add(glob, key)
            elif rule.methods is not None and all(is_literal(m) for m in rule.methods.globs):
                for method in rule.methods.globs:
                    by_method[method].append(key)
            else:
                any_method.append(key)
        for index in self._targets.values():
            index.freeze()
        self._by_method = dict(by_method)
        self._any_method = tuple(any_method)

    def candidates(self, request: PolicyRequest) -> list[CompiledRule]:
        keys: set[int] = set(self._any_method)
        if (hit := self._by_method.get(request.method)) is not None:
            keys.update(hit)
        if request.target is not None:
            self._targets[request.target.kind].collect(request.target.name, keys)
        rules = self.rules
        return [rules[k] for k in sorted(keys)]
