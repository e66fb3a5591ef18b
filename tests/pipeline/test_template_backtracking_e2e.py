"""DS-4, IN-4 against a real ``bastion serve`` fronting an upstream whose resource templates
make a backtracking regex run for hours (``tests/gateway/upstreams/template_traps.py``: red
teams t and v).

Before, the gateway matched every template with a Python regex on its event loop: one
``resources/read`` of ``traps+x:`` and 120 ``a`` left /healthz unanswered for 20 s (it would
have taken hours), and ``note://`` with 250 ``a/`` 17 s. Now templates are matched in time
linear in the URI: reads of 4 KB URIs (the longest a policy lets through, AZ-3) that miss
or match are answered at once, and everyone else meanwhile too. IN-4: templates no
matcher could take (``{a}{a}``, an unpaired brace) raised out of the catalog rebuild, so no
upstream's templates were offered at all; now they are left out, and the rest offered.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.pipeline.live import Gateway, policy_text, serve
from tests.support import BASTION

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

FIXTURE = f"  fixture:\n    command: {BASTION}\n    args: [fixture, --stdio]\n"
TRAPS = Path(__file__).parents[1] / "gateway" / "upstreams" / "template_traps.py"
KEYS = {"alice": ("dev",), "admin": ("admin",)}
READS = """\
  - id: dev-reads
    effect: allow
    roles: [dev]
    resources: ["traps+**", "fixture+**"]
"""
PROMPT = 3.0  # seconds; before the fix /healthz waited for the whole match (hours)
LONGEST = 4096  # characters of a resource URI a policy decides on (AZ-3)
HEAD = "traps+"
# (URI, whether a template matches it), each as long as the policy allows.
ATTACKS = [
    (HEAD + "x:" + "a" * (LONGEST - len(HEAD) - 2), False),
    (HEAD + "x:" + "a" * (LONGEST - len(HEAD) - 3) + "!", True),
    (HEAD + "note://" + "a/" * ((LONGEST - len(HEAD) - 9) // 2) + "a?", False),
    (HEAD + "note://" + "a/" * ((LONGEST - len(HEAD) - 8) // 2) + "a", True),
]


POLICY = policy_text(["echo"]).replace("  - id: admin-all\n", READS + "  - id: admin-all\n")


def _traps(mode: str, record: Path) -> str:
    return f"  traps:\n    command: {sys.executable}\n    args: [{TRAPS}, {mode}, {record}]\n"


def _templates(gw: Gateway) -> set[str]:
    listed = gw.modern("alice", "resources/templates/list").json()["result"]
    return {t["uriTemplate"] for t in listed["resourceTemplates"]}


def _read(gw: Gateway, uri: str) -> dict[str, Any]:
    headers = {"mcp-name": uri}
    try:
        body: dict[str, Any] = gw.modern(
            "alice", "resources/read", {"uri": uri}, headers=headers
        ).json()
    except httpx.TimeoutException:
        return {"timed out": uri}
    return body


def test_ds4_in4_pathological_templates_answer_4kb_reads_at_once_and_healthz_stays_prompt(
    tmp_path: Path,
) -> None:
    record = tmp_path / "record"
    with serve(tmp_path / "gw", _traps("backtrack", record), POLICY, KEYS) as gw:
        assert "traps+x:{+a}{+b}{+c}{+d}{+e}{+f}{+g}!" in _templates(gw)
        answers: dict[str, dict[str, Any]] = {}
        threads = [
            threading.Thread(target=lambda u=uri: answers.__setitem__(u, _read(gw, u)))
            for uri, _ in ATTACKS * 2
        ]
        for thread in threads:
            thread.start()
        time.sleep(0.2)
        started = time.monotonic()
        healthz = httpx.get(f"{gw.base}/healthz", timeout=20)
        waited = time.monotonic() - started
        for thread in threads:
            thread.join(timeout=60)
        assert healthz.status_code == 200
        assert waited < PROMPT, f"/healthz took {waited:.1f}s while the reads matched"

        for uri, matches in ATTACKS:
            assert LONGEST - 1 <= len(uri) <= LONGEST
            answer = answers[uri]
            if matches:
                text = answer["result"]["contents"][0]["text"]
                assert text == f"served by template_traps: {uri[len(HEAD) :]}"
            else:
                assert answer["error"]["message"] == "Resource not found", answer
    reads = record.read_text().splitlines()
    assert sorted(set(reads)) == sorted(
        f"resources/read {uri[len(HEAD) :]}" for uri, matches in ATTACKS if matches
    )


def test_in4_templates_no_matcher_could_take_are_left_out_and_the_rest_offered(
    tmp_path: Path,
) -> None:
    record = tmp_path / "record"
    servers = _traps("odd", record) + FIXTURE
    with serve(tmp_path / "gw", servers, POLICY, KEYS) as gw:
        templates = _templates(gw)
        assert {"traps+odd:{1}", "fixture+test://template/{id}/data"} <= templates
        assert not {"traps+dup://{a}/{a}", "traps+open://{a", "traps+query://x{?q}"} & templates
        read = _read(gw, "traps+odd:x")["result"]["contents"][0]["text"]
        assert read == "served by template_traps: odd:x"
