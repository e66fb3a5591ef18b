"""The example policy the README shows (and ``examples/policy.yaml``, the same file) does
what the README says of it, for the principal ids the gateway really gives (AZ-1)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bastion.policy import PolicyRequest, Target, TargetKind, parse_policy
from bastion.policy.engine import Policy
from bastion.policy.principal_ids import unmatchable
from tests.policy.helpers import MONDAY_NOON

ROOT = Path(__file__).resolve().parents[2]
BLOCK = re.search(
    r"```yaml\n(# Bastion authorization policy.*?)```", (ROOT / "README.md").read_text(), re.S
)


@pytest.fixture(scope="module")
def example() -> Policy:
    assert BLOCK is not None, "README shows no example policy"
    return Policy(parse_policy(BLOCK.group(1), source="README"))


def test_the_readme_example_is_examples_policy_yaml() -> None:
    assert BLOCK is not None
    assert BLOCK.group(1) == (ROOT / "examples" / "policy.yaml").read_text()


def test_az1_every_principal_glob_of_the_example_can_match_an_id(example: Policy) -> None:
    assert unmatchable(example.source) == []


def _decide(
    policy: Policy, principal: str, kind: TargetKind, name: str, roles: tuple[str, ...] = ()
) -> tuple[str, str]:
    method = {"tool": "tools/call", "resource": "resources/read", "prompt": "prompts/get"}[kind]
    request = PolicyRequest(
        principal=principal, roles=roles, method=method, target=Target(kind, name), at=MONDAY_NOON
    )
    decision = policy.decide(request)
    return decision.effect, decision.rule_id


@pytest.mark.parametrize(
    ("principal", "kind", "name", "expected"),
    [
        # "principal: apikey:alice" makes API key alice an admin.
        ("apikey:alice", "tool", "github__delete_repo", ("allow", "admin-all")),
        ("alice", "tool", "github__delete_repo", ("deny", "default-deny")),
        # "mtls:ci-*": the mTLS service accounts ci-build, ci-release are developers.
        ("mtls:ci-build", "tool", "workspace__list_files", ("allow", "developer-workspace")),
        ("apikey:ci-build", "tool", "workspace__list_files", ("deny", "default-deny")),
        # no-secrets: an .env file is never readable, through any server, even by an admin.
        ("apikey:alice", "resource", "files+file:///srv/app/.env", ("deny", "no-secrets")),
        ("mtls:ci-build", "resource", "files+file:///srv/docs/.env", ("deny", "no-secrets")),
        ("mtls:ci-build", "resource", "files+file:///srv/docs/a.md", ("allow", "viewer-read")),
        ("mtls:ci-build", "resource", "files+file:///srv/docs/.env?x", ("deny", "no-secrets")),
        ("mtls:ci-build", "resource", "files+file://localhost/srv/a", ("deny", "invalid-name")),
    ],
)
def test_az1_the_example_decides_as_the_readme_says(
    example: Policy, principal: str, kind: TargetKind, name: str, expected: tuple[str, str]
) -> None:
    assert _decide(example, principal, kind, name) == expected


def test_az1_a_jwt_groups_claim_grants_the_example_roles(example: Policy) -> None:
    request = PolicyRequest(
        principal="jwt:https://idp.example.com/realms/eng#alice",
        method="resources/read",
        target=Target("resource", "workspace+workspace://demo/README.md"),
        claims={"groups": ["staff"]},
        at=MONDAY_NOON,
    )
    assert example.decide(request).rule_id == "viewer-read"
