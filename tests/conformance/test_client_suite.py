"""The official conformance suite's client scenarios against Bastion's client face.

The suite starts a mock server per scenario and runs ``client_command.py <url>``. Both
alpha requirement sets run with ``expected-client-failures.yml``, which lists only the
OAuth scenarios (upstream authentication is a later issue): everything else must pass,
and a listed scenario that starts passing fails the run as stale.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.conformance.harness import run_suite
from tests.support import CONFORMANCE_ALPHA

pytestmark = pytest.mark.conformance

HERE = Path(__file__).parent
COMMAND = f"{sys.executable} {HERE / 'client_command.py'}"
BASELINE = HERE / "expected-client-failures.yml"

NON_AUTH = {
    "2025-11-25": {"initialize", "tools_call", "elicitation-sep1034-client-defaults", "sse-retry"},
    "2026-07-28": {
        "tools_call",
        "request-metadata",
        "sep-2322-client-request-state",
        "http-standard-headers",
        "http-custom-headers",
        "http-invalid-tool-headers",
        "json-schema-ref-no-deref",
    },
}


@pytest.mark.parametrize("revision", ["2025-11-25", "2026-07-28"])
def test_client_requirements(tmp_path: Path, revision: str) -> None:
    run = run_suite(
        CONFORMANCE_ALPHA,
        [
            "client",
            "--command",
            COMMAND,
            "--requirements",
            revision,
            "--expected-failures",
            str(BASELINE),
            "--timeout",
            "60000",
        ],
        tmp_path,
    )
    assert run.returncode == 0, run.output[-3000:]
    expected = NON_AUTH[revision] | {"json-schema-2020-12-preservation"}
    assert expected <= run.scenarios()
    assert run.bad(expected) == []
