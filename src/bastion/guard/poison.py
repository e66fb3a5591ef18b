"""Tool poisoning scanner (TC-1, TC-3): read every string an upstream's definitions carry.

A tool is walked whole: name, title, description, annotations, icons, execution, _meta and
the entire input and output schemas (property names, titles, descriptions, enum values,
defaults, examples), because poison hidden in a nested property description reaches the
model just the same.
Prompts and resources are walked the same way. The walk is bounded (``max_nodes``,
``max_depth``); a definition beyond the bounds is itself a finding (``oversized``).
Scanning is pure: it returns findings and never changes the definition.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator, Mapping
from typing import Final

import msgspec

from bastion._types import JSONObject, JSONValue
from bastion.guard._phrases import (
    EXFIL_URL,
    SEND_TO_URL,
    SENSITIVE_FILE,
    TOOL_OVERRIDE,
    find_injection,
)
from bastion.guard._unicode import HIDDEN, search, visible
from bastion.guard.findings import Finding, FindingKind

__all__ = ["PoisonScanner", "is_poisoned"]

MAX_NODES: Final = 20_000  # strings and containers per definition; real tools use a few hundred
MAX_DEPTH: Final = 64
EXCERPT_CONTEXT: Final = 40  # characters either side of a match
_MAX_BARE: Final = 128  # characters in a tool name (AZ-3)
_NAME: Final = re.compile(rf"[A-Za-z0-9_.\-]{{1,{_MAX_BARE}}}")
_RUN: Final = re.compile(r"(?<![\w.\-])[\w.\-]+")  # a word of name characters


def is_poisoned(findings: Collection[Finding]) -> bool:
    """Whether ``findings`` about a definition are enough to hold it back."""
    return bool(findings)


class PoisonScanner:
    """Scans tool, prompt and resource definitions; one instance serves every upstream.

    ``separator`` is the gateway's namespace separator (``<server><separator><tool>``), used
    to recognise references to another server's tools.
    """

    def __init__(
        self, *, separator: str = "__", max_nodes: int = MAX_NODES, max_depth: int = MAX_DEPTH
    ) -> None:
        if not separator:
            raise ValueError("separator must not be empty")
        self._separator = separator
        self._max_nodes = max_nodes
        self._max_depth = max_depth
        self._names: tuple[Mapping[str, Collection[str]], str | None, set[str]] | None = None
        sep = re.escape(separator)
        self._namespaced = re.compile(
            rf"\b([A-Za-z0-9][A-Za-z0-9_.\-]{{0,63}}?){sep}([A-Za-z0-9_.\-]+)"
        )

    def scan_tool(
        self,
        tool: JSONObject | msgspec.Struct,
        *,
        server: str | None = None,
        others: Mapping[str, Collection[str]] | None = None,
    ) -> list[Finding]:
        """Findings for one tool definition of ``server``.

        ``others`` maps each other server to its bare tool names: a description naming one of
        them (namespaced, or bare when the name is distinctive) is a cross-server reference.
        """
        return self._scan(_builtins(tool), server, others or {}, skip_name=True)

    def scan_prompt(
        self,
        prompt: JSONObject | msgspec.Struct,
        *,
        server: str | None = None,
        others: Mapping[str, Collection[str]] | None = None,
    ) -> list[Finding]:
        return self._scan(_builtins(prompt), server, others or {}, skip_name=True)

    def scan_resource(
        self,
        resource: JSONObject | msgspec.Struct,
        *,
        server: str | None = None,
        others: Mapping[str, Collection[str]] | None = None,
    ) -> list[Finding]:
        return self._scan(_builtins(resource), server, others or {}, skip_name=False)

    def scan_text(self, text: str, path: str = "$") -> list[Finding]:
        """Findings in one string (no cross-server check: that needs the catalog)."""
        return _dedupe(self._text(text, path, None, None))

    # -- walk -----------------------------------------------------------------------------

    def _scan(
        self,
        item: JSONValue,
        server: str | None,
        others: Mapping[str, Collection[str]],
        *,
        skip_name: bool,
    ) -> list[Finding]:
        findings: list[Finding] = []
        budget = [self._max_nodes]
        for path, text, is_key in self._strings(item, "$", 0, budget):
            if budget[0] < 0:
                break
            check_refs = not is_key and not (skip_name and path == "$.name")
            findings.extend(self._text(text, path, server, others if check_refs else None))
        if budget[0] < 0:
            findings.append(Finding(kind="oversized", path="$", excerpt="definition too large"))
        return _dedupe(findings)

    def _strings(
        self, value: JSONValue, path: str, depth: int, budget: list[int]
    ) -> Iterator[tuple[str, str, bool]]:
        budget[0] -= 1
        if budget[0] < 0:
            return
        if isinstance(value, str):
            yield path, value, False
        elif depth >= self._max_depth and isinstance(value, dict | list):
            budget[0] = -1  # too deep counts as too large
        elif isinstance(value, dict):
            for raw_key, child in value.items():
                key = str(raw_key)
                child_path = _child(path, key)
                yield child_path, key, True  # property names are read by the model too
                yield from self._strings(child, child_path, depth + 1, budget)
        elif isinstance(value, list):
            for index, child in enumerate(value):
                yield from self._strings(child, f"{path}[{index}]", depth + 1, budget)

    def _text(
        self,
        text: str,
        path: str,
        server: str | None,
        others: Mapping[str, Collection[str]] | None,
    ) -> Iterator[Finding]:
        match = search(HIDDEN, text)
        if match:
            yield _finding("invisible-character", path, text, match)
        match = find_injection(text)
        if match:  # on the folded copy when only that reads as a phrase
            yield _finding("hidden-instruction", path, match.string, match)
        match = SENSITIVE_FILE.search(text)
        if match:
            yield _finding("sensitive-file", path, text, match)
        match = SEND_TO_URL.search(text) or EXFIL_URL.search(text)
        if match:
            yield _finding("exfiltration", path, text, match)
        if others is not None:
            yield from self._references(text, path, server, others)

    def _references(
        self,
        text: str,
        path: str,
        server: str | None,
        others: Mapping[str, Collection[str]],
    ) -> Iterator[Finding]:
        match = TOOL_OVERRIDE.search(text)
        if match:
            yield _finding("cross-server-reference", path, text, match)
            return
        for match in self._namespaced.finditer(text):
            prefix = match.group(1)
            if prefix != server and (not others or prefix in others):
                yield _finding("cross-server-reference", path, text, match)
                return
        # A bare name, where it stands as a word of its own: at the start of a run of
        # name characters, ending at the run's end or before a '.' in it.
        names = self._bare_names(others, server)
        if not names:
            return
        for run in _RUN.finditer(text):
            start, length = run.start(), run.end() - run.start()
            head = text[start : start + min(length, _MAX_BARE + 1)]  # names are no longer
            ends = [i for i, c in enumerate(head) if c == "."]
            for end in [*ends, length] if length <= _MAX_BARE else ends:
                if head[:end] in names:
                    yield _finding("cross-server-reference", path, text, (start, start + end))
                    return

    def _bare_names(self, others: Mapping[str, Collection[str]], server: str | None) -> set[str]:
        """The other servers' tool names that count bare: those that cannot be an ordinary
        word. Built once per ``others`` mapping (a review passes the same one for every
        definition), so the check costs the text's length, not the number of names (DS-4)."""
        cached = self._names
        if cached is not None and cached[0] is others and cached[1] == server:
            return cached[2]
        names = {
            name
            for other, theirs in others.items()
            if other != server
            for name in theirs
            if len(name) >= 4 and not name.isalpha() and _NAME.fullmatch(name)
        }
        self._names = (others, server, names)
        return names


def _builtins(item: JSONObject | msgspec.Struct) -> JSONValue:
    return msgspec.to_builtins(item) if isinstance(item, msgspec.Struct) else item


def _child(path: str, key: str) -> str:
    if _NAME.fullmatch(key) and "." not in key:
        return f"{path}.{key}"
    return f"{path}[{visible(repr(key), 64)}]"


def _finding(
    kind: FindingKind, path: str, text: str, match: re.Match[str] | tuple[int, int]
) -> Finding:
    begin, finish = match.span() if isinstance(match, re.Match) else match
    start = max(0, begin - EXCERPT_CONTEXT)
    end = min(len(text), finish + EXCERPT_CONTEXT)
    excerpt = ("…" if start else "") + text[start:end] + ("…" if end < len(text) else "")
    return Finding(kind=kind, path=visible(path, 200), excerpt=visible(excerpt, 160))


def _dedupe(findings: Iterator[Finding] | list[Finding]) -> list[Finding]:
    seen: set[tuple[str, str]] = set()
    unique = []
    for finding in findings:
        if (finding.kind, finding.path) not in seen:
            seen.add((finding.kind, finding.path))
            unique.append(finding)
    return unique
