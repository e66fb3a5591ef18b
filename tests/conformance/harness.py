"""Running the official conformance suite from pytest and reading its results."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.support import node_env, require_tool

SUITE_TIMEOUT = 600  # seconds for one whole harness run


@dataclass(frozen=True)
class Check:
    scenario: str
    id: str
    status: str
    details: str


@dataclass(frozen=True)
class Run:
    returncode: int
    output: str
    checks: list[Check]

    def scenarios(self) -> set[str]:
        return {c.scenario for c in self.checks}

    def bad(self, scenarios: set[str] | None = None) -> list[Check]:
        """FAILURE and WARNING checks (in ``scenarios`` when given)."""
        return [
            c
            for c in self.checks
            if c.status in ("FAILURE", "WARNING") and (scenarios is None or c.scenario in scenarios)
        ]


def run_suite(binary: Path, args: list[str], out_dir: Path) -> Run:
    proc = subprocess.run(
        [str(require_tool(binary)), *args, "-o", str(out_dir)],
        check=False,
        capture_output=True,
        text=True,
        env=node_env(),
        timeout=SUITE_TIMEOUT,
        cwd=binary.parent.parent.parent,
    )
    return Run(proc.returncode, proc.stdout + proc.stderr, read_checks(out_dir))


def read_checks(out_dir: Path) -> list[Check]:
    checks: list[Check] = []
    for path in sorted(out_dir.glob("**/checks.json")):
        # Folders are "[server-]<scenario>-<YYYY-MM-DDTHH-MM-SS-mmmZ>" (auth/ nested for
        # client auth scenarios); the timestamp holds the last six dashes.
        name = path.parent.relative_to(out_dir).as_posix().rsplit("-", 6)[0]
        name = name.removeprefix("server-")
        for raw in json.loads(path.read_text()):
            details = json.dumps(raw.get("details") or raw.get("errorMessage") or "")[:500]
            checks.append(Check(name, str(raw.get("id")), str(raw.get("status")), details))
    return checks
