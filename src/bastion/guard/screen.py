"""Poison screen for prompts, resources and resource templates (TC-1).

Their names, descriptions and arguments reach the model as tools' do, so each offered
definition is scanned whole (``PoisonScanner``; a resource's own URI may name a file or an
IP-literal host, as addresses do) and a poisoned-looking one is held back until an admin
approves that exact definition (``HeldDefinitions``, by content hash): the caller leaves it
out of the catalog, so it is neither listed nor got or read. Unlike tools, clean ones are not
pinned (a changed definition is screened again, not held as a rug pull). ``screen`` reports
each newly held definition once (by content hash, in a bounded memory, and not again while
it waits in the store) so the caller audits a hold once, not at every catalog rebuild.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Collection, Mapping
from typing import Final, Literal

import msgspec

from bastion._types import JSONObject
from bastion.guard.findings import Finding
from bastion.guard.held import Candidate, DefinitionKind, HeldDefinitions, Standing
from bastion.guard.poison import PoisonScanner

__all__ = ["LIST_KINDS", "DefinitionHeld", "DefinitionKind", "DefinitionScreen"]

# The list each kind is offered in (``prompts/list``...), and the field naming an item.
LIST_KINDS: Final[Mapping[str, tuple[DefinitionKind, str]]] = {
    "prompts": ("prompt", "name"),
    "resources": ("resource", "uri"),
    "resourceTemplates": ("resource-template", "uriTemplate"),
}
# A resource's URI is its address: naming a file or an IP-literal host is what it is for.
_ADDRESS_KINDS: Final = frozenset({"sensitive-file", "exfiltration"})
REMEMBERED: Final = 4096  # held definitions already reported (oldest forgotten first)
_ENCODER: Final = msgspec.json.Encoder(order="sorted")


class DefinitionHeld(msgspec.Struct, frozen=True, kw_only=True):
    """One definition held back, for the audit log."""

    kind: DefinitionKind
    server: str
    name: str  # the prompt's name, the resource's URI or the template
    hash: str  # SHA-256 of the definition's canonical JSON
    findings: list[Finding]
    reason: Literal["new-poisoned"] = "new-poisoned"


class DefinitionScreen:
    """Screens offered prompt, resource and template lists; safe to share between threads."""

    def __init__(
        self,
        scanner: PoisonScanner,
        *,
        store: HeldDefinitions | None = None,
        remembered: int = REMEMBERED,
    ) -> None:
        self._scanner = scanner
        self._store = store
        self._remembered = remembered
        self._reported: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._lock = threading.Lock()

    def screen(
        self,
        server: str,
        list_kind: str,
        items: list[JSONObject],
        others: Mapping[str, Collection[str]] | None = None,
    ) -> tuple[list[JSONObject], list[DefinitionHeld]]:
        """The items of ``server``'s ``list_kind`` list that may be shown, and the holds not
        reported before. A list kind not in ``LIST_KINDS`` passes unscreened."""
        if list_kind not in LIST_KINDS:
            return items, []
        kind, name_field = LIST_KINDS[list_kind]
        scan = self._scanner.scan_prompt if kind == "prompt" else self._scanner.scan_resource
        poisoned: dict[int, Candidate] = {}
        for i, item in enumerate(items):
            findings = [
                f
                for f in scan(item, server=server, others=others)
                if not (f.path == f"$.{name_field}" and f.kind in _ADDRESS_KINDS)
            ]
            if findings:
                digest = hashlib.sha256(_ENCODER.encode(item)).hexdigest()
                name = str(item.get(name_field, ""))
                poisoned[i] = Candidate(name=name, hash=digest, definition=item, findings=findings)
        standings: dict[int, Standing] = dict.fromkeys(poisoned, "new")
        if self._store is not None and poisoned:
            found = self._store.check(server, kind, list(poisoned.values()))
            standings = dict(zip(poisoned, found, strict=True))
        kept: list[JSONObject] = []
        held: list[DefinitionHeld] = []
        for i, item in enumerate(items):
            if i not in poisoned:
                kept.append(item)
                continue
            candidate, standing = poisoned[i], standings[i]
            if standing == "approved":
                kept.append(item)
            elif standing == "new" and self._first_report(server, candidate.hash):
                held.append(
                    DefinitionHeld(
                        kind=kind, server=server, name=candidate.name, hash=candidate.hash,
                        findings=candidate.findings,
                    )
                )  # fmt: skip
        return kept, held

    def _first_report(self, server: str, digest: str) -> bool:
        key = (server, digest)
        with self._lock:
            if key in self._reported:
                self._reported.move_to_end(key)
                return False
            self._reported[key] = None
            if len(self._reported) > self._remembered:
                self._reported.popitem(last=False)
            return True
