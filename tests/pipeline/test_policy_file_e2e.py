"""A real ``bastion serve`` whose policy file goes wrong (red team u): a file replaced with
one YAML cannot hold (``2024-02-30``, a 5000-digit integer) is refused and audited while the
gateway goes on serving under the old policy (IN-1, AD-1); ``PUT /api/v1/policies`` of such
text is a 400 naming the line; a PUT onto a policy file others may write changes nothing and
says why; ``GET /api/v1/policies`` shows the policy in force, not a refused file (AZ-1).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.pipeline.live import Gateway, policy_text, serve, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

KEYS = {"dev": ("dev",), "admin": ("admin",)}
GOOD = policy_text(["fx__echo"])
ADMINS_ONLY = """\
version: 1
roles: {admin: {}, dev: {}}
rules:
  - {id: admins-only, effect: allow, roles: [admin], methods: ["**"]%s}
"""
YAML = {"content-type": "application/yaml"}


@pytest.fixture
def gw(tmp_path: Path) -> Iterator[Gateway]:
    with serve(tmp_path / "gw", "  {}", GOOD, KEYS) as gateway:
        gateway.policy.chmod(0o600)
        yield gateway


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _replace(gw: Gateway, text: str) -> None:
    """As an operator or config management should: a temporary file renamed over it."""
    temporary = gw.dir / ".policy.tmp"
    temporary.write_text(text)
    temporary.chmod(0o600)
    os.replace(temporary, gw.policy)


def _reloads(gw: Gateway) -> list[dict[str, Any]]:
    return [r for r in gw.audit() if r["method"] == "policy.reload"]


def _served_under_the_old_policy(gw: Gateway) -> None:
    assert gw.proc.poll() is None, "the gateway died"
    assert httpx.get(f"{gw.base}/readyz", timeout=5).status_code == 200
    listed = gw.modern("dev", "tools/list").json()
    assert "result" in listed, listed  # the new policy would refuse dev everything


@pytest.mark.parametrize(
    ("value", "problem"),
    [("2024-02-30", "'2024-02-30' is not a valid timestamp"), ("9" * 5000, "not a valid int")],
)
def test_in1_ad1_a_file_replaced_with_a_value_yaml_cannot_hold_is_refused_not_fatal(
    gw: Gateway, value: str, problem: str
) -> None:
    """Red-team u (poll_crash.sh, poll_bigint.sh): the next poll raised ValueError and took
    the whole gateway down (readyz unanswered). Now the reload is refused and audited with
    the line at fault, and callers go on being served under the old policy."""
    bad = ADMINS_ONLY % f", description: {value}"
    _replace(gw, bad)
    refused = wait_until(lambda: _reloads(gw), timeout=30, step=0.3)
    assert refused[0]["outcome"] == "invalid" and refused[0]["decision"] == "deny"
    assert refused[0]["kind"] == "policy" and refused[0]["target"] == str(gw.policy)
    error = refused[0]["detail"]["error"]
    assert error.startswith("policy.yaml:4:") and problem in error
    _served_under_the_old_policy(gw)
    shown = gw.admin("GET", "/policies").json()
    assert (shown["version"], shown["policy"]) == (_sha(GOOD), GOOD)
    assert shown["file"]["status"] == "refused" and shown["file"]["version"] == _sha(bad)
    assert shown["file"]["error"].startswith("policy:4:") and problem in shown["file"]["error"]
    _replace(gw, GOOD.replace("dev-tools", "dev-tools-again"))  # a fixed file still loads
    wait_until(lambda: len(_reloads(gw)) == 2, timeout=30, step=0.3)
    assert _reloads(gw)[1]["outcome"] == "ok"


def test_in1_a_put_of_a_bad_date_is_400_naming_the_line(gw: Gateway) -> None:
    """Red-team u: the same text through the API was an internal error (500)."""
    put = gw.admin("PUT", "/policies", content=ADMINS_ONLY % ", description: 2024-02-30",
                   headers=YAML)  # fmt: skip
    assert put.status_code == 400, put.text
    assert put.json()["error"] == "invalid_policy"
    assert put.json()["message"].startswith("policy:4:")
    assert "'2024-02-30' is not a valid timestamp" in put.json()["message"]
    assert gw.policy.read_text() == GOOD
    _served_under_the_old_policy(gw)


def test_az1_a_put_onto_a_policy_file_others_may_write_changes_nothing(gw: Gateway) -> None:
    """Red-team u (halfput.sh): with the file at 0666, PUT answered 500 but had replaced the
    file, and that "failed" policy took effect once someone ran chmod 600. Now the PUT is
    refused before anything is written (409, saying why and the fix), and fixing the mode
    brings back the same old policy."""
    gw.policy.chmod(0o666)
    put = gw.admin("PUT", "/policies", content=ADMINS_ONLY % "", headers=YAML)
    assert put.status_code == 409, put.text
    message = put.json()["message"]
    assert "the policy file is writable by every user (run chmod o-w on it)" in message
    assert message.endswith("the policy was not replaced") and str(gw.dir) not in message
    assert gw.policy.read_text() == GOOD
    assert gw.policy.stat().st_mode & 0o777 == 0o666
    _served_under_the_old_policy(gw)
    gw.policy.chmod(0o600)
    wait_until(lambda: any(r["outcome"] == "ok" for r in _reloads(gw)), timeout=30, step=0.3)
    _served_under_the_old_policy(gw)
    assert gw.admin("GET", "/policies").json() == {
        "version": _sha(GOOD),
        "rules": 3,
        "policy": GOOD,
    }


def test_az1_get_reports_the_policy_in_force_not_a_refused_hand_edit(gw: Gateway) -> None:
    """Red-team u (getpol.sh): after a hand edit with a typo (role ``admn``) was refused, GET
    returned the refused text and its sha-256 as the policy while callers were served under
    the old one. GET shows what is in force, and the refused file apart, with why."""
    typo = ADMINS_ONLY.replace("roles: [admin]", "roles: [admn]") % ""
    _replace(gw, typo)
    wait_until(lambda: _reloads(gw), timeout=30, step=0.3)
    _served_under_the_old_policy(gw)
    assert gw.admin("GET", "/policies").json() == {
        "version": _sha(GOOD),
        "rules": 3,
        "policy": GOOD,
        "file": {
            "version": _sha(typo),
            "status": "refused",
            "error": "policy: rules[0].roles[0]: role 'admn' is not declared under roles",
        },
    }
